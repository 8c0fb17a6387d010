"""Image quality: full- and no-reference metrics, corrections (exposure, white balance, sharpening, denoising, undistortion)."""
