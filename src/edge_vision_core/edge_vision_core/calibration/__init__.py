"""Camera calibration: targets, view selection, solvers and camera_info files."""
