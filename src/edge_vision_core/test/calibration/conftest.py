"""Shared factories for the calibration tests: true cameras, targets and rendered views.

Rendering is the slow part (tens of ms per view), so rendered view sets are cached per test
session; they are read-only arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from edge_vision_core import CameraModel
from edge_vision_core.calibration import TargetConfig, make_target
from edge_vision_core.calibration.synthetic import SyntheticCamera, sample_board_poses

#: The true cameras the tests calibrate: a VGA camera with barrel distortion, a wide-angle lens
#: that needs the rational model, and a fisheye.
TRUE_CAMERAS: dict[str, CameraModel] = {
    'pinhole': CameraModel.from_intrinsics(
        640, 480, 520.0, 515.0, 322.0, 238.0, [-0.28, 0.09, 0.001, -0.0007, -0.01]),
    'rational': CameraModel.from_intrinsics(
        640, 480, 510.0, 512.0, 318.0, 243.0,
        [2.1, 0.9, 0.001, 0.0005, 0.02, 2.45, 1.6, 0.15], 'rational_polynomial'),
    'fisheye': CameraModel.from_intrinsics(
        640, 480, 260.0, 261.0, 321.0, 239.0, [0.05, -0.02, 0.01, -0.003], 'equidistant'),
}

TARGETS: dict[str, TargetConfig] = {
    'chessboard': TargetConfig(pattern='chessboard', cols=9, rows=6, square_size=0.03),
    'charuco': TargetConfig(pattern='charuco', cols=7, rows=5, square_size=0.03,
                            marker_size=0.021, dictionary='DICT_4X4_50'),
}


@dataclass(frozen=True)
class ViewSet:
    """Rendered views of one target through one true camera."""

    camera: CameraModel
    target_config: TargetConfig
    images: tuple[np.ndarray, ...]
    poses: tuple[tuple[np.ndarray, np.ndarray], ...]
    renderer: SyntheticCamera


@functools.cache
def _renderer(camera_name: str) -> SyntheticCamera:
    return SyntheticCamera(TRUE_CAMERAS[camera_name], supersample=2)


@functools.cache
def _views(camera_name: str, target_name: str, count: int, blur: float, noise: float,
           seed: int) -> ViewSet:
    camera = TRUE_CAMERAS[camera_name]
    config = TARGETS[target_name]
    target = make_target(config)
    renderer = _renderer(camera_name)
    rng = np.random.default_rng(seed)
    poses = sample_board_poses(target, camera, count, rng, fill=(0.35, 0.8))
    images = []
    for rvec, tvec in poses:
        image = renderer.render(target, rvec, tvec, blur_sigma=blur, noise_sigma=noise, rng=rng)
        image.setflags(write=False)
        images.append(image)
    return ViewSet(camera, config, tuple(images), tuple(poses), renderer)


@pytest.fixture
def rendered_views() -> Callable[..., ViewSet]:
    """``rendered_views(camera, target, count=14, blur=0.7, noise=2.0, seed=5)`` (cached)."""

    def make(camera: str, target: str, count: int = 14, blur: float = 0.7, noise: float = 2.0,
             seed: int = 5) -> ViewSet:
        return _views(camera, target, count, blur, noise, seed)

    return make
