"""Calibration cost: target detection per view, view selection, and the solve for N views.

Usage: ``.venv/bin/python benchmarks/bench_calibration.py [--size 640x480] [--views 40]
[--images DIR --board 9x6]``

Renders ``--views`` views of a 9x6 chessboard and a 7x5 ChArUco board through known cameras
(``edge_vision_core.calibration.synthetic``), then prints:

- detection time per view (median and 95th percentile; views with and without the target),
- ``Calibrator.add_image`` time per view (detection + blur + coverage bookkeeping),
- the solve time for 10, 20 and all views, per model (pinhole, rational, fisheye), with the
  RMS and the largest relative error of fx, fy, cx, cy against the true camera.

With ``--images DIR`` it also calibrates a real chessboard image set twice, with
``edge_vision_core`` and with the OpenCV-tutorial pipeline (``findChessboardCorners``,
``cornerSubPix`` with an 11x11 half-window, ``calibrateCamera`` on every image), and prints
both results side by side.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import time

import cv2
import numpy as np

from edge_vision_core import CameraModel
from edge_vision_core.calibration import (
    Calibrator,
    CalibratorConfig,
    SolverConfig,
    TargetConfig,
    make_target,
    solve,
)
from edge_vision_core.calibration.synthetic import SyntheticCamera, sample_board_poses


def cameras(width: int, height: int) -> dict[str, CameraModel]:
    s = width / 640.0
    return {
        'pinhole': CameraModel.from_intrinsics(width, height, 520 * s, 515 * s, width / 2 + 2,
                                               height / 2 - 2, [-0.28, 0.09, 0.001, -0.0007,
                                                                -0.01]),
        'rational': CameraModel.from_intrinsics(
            width, height, 510 * s, 512 * s, width / 2 - 2, height / 2 + 3,
            [2.1, 0.9, 0.001, 0.0005, 0.02, 2.45, 1.6, 0.15], 'rational_polynomial'),
        'fisheye': CameraModel.from_intrinsics(width, height, 260 * s, 261 * s, width / 2 + 1,
                                               height / 2 - 1, [0.05, -0.02, 0.01, -0.003],
                                               'equidistant'),
    }


TARGETS = {
    'chessboard 9x6': TargetConfig(cols=9, rows=6, square_size=0.03),
    'charuco 7x5': TargetConfig(pattern='charuco', cols=7, rows=5, square_size=0.03,
                                marker_size=0.021),
}


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return f'median {statistics.median(values) * 1e3:7.2f} ms  p95 {p95 * 1e3:7.2f} ms'


def bench_synthetic(width: int, height: int, count: int) -> None:
    rng = np.random.default_rng(0)
    cams = cameras(width, height)
    print(f'OpenCV {cv2.__version__}, {width}x{height}, {count} rendered views per '
          f'camera/target')
    for target_name, config in TARGETS.items():
        target = make_target(config)
        for model_name, camera in cams.items():
            renderer = SyntheticCamera(camera, supersample=2)
            poses = sample_board_poses(target, camera, count, rng, fill=(0.35, 0.8))
            images = [renderer.render(target, r, t, blur_sigma=0.7, noise_sigma=2.0, rng=rng)
                      for r, t in poses]
            blank = np.full((height, width), 110, np.uint8)
            detect, miss = [], []
            detections = []
            for image in images:
                t0 = time.perf_counter()
                det = target.detect(image)
                detect.append(time.perf_counter() - t0)
                if det is not None:
                    detections.append(det)
            for _ in range(10):
                t0 = time.perf_counter()
                target.detect(blank)
                miss.append(time.perf_counter() - t0)
            cal = Calibrator(config, CalibratorConfig(model=model_name, min_views=3,
                                                      min_view_distance=0.0))
            add = []
            for image in images:
                t0 = time.perf_counter()
                cal.add_image(image)
                add.append(time.perf_counter() - t0)
            print(f'\n{target_name} / {model_name}: {len(detections)}/{count} views detected')
            print(f'  detect (target present)  {ms(detect)}')
            print(f'  detect (no target)       {ms(miss)}')
            print(f'  Calibrator.add_image     {ms(add)}')
            for n in sorted({10, 20, len(detections)}):
                if n > len(detections):
                    continue
                t0 = time.perf_counter()
                result = solve(detections[:n], SolverConfig(model=model_name))
                dt = time.perf_counter() - t0
                m, c = result.model, camera
                rel = max(abs(m.fx / c.fx - 1), abs(m.fy / c.fy - 1), abs(m.cx / c.cx - 1),
                          abs(m.cy / c.cy - 1))
                print(f'  solve {n:3d} views: {dt * 1e3:8.1f} ms  RMS {result.rms:.3f} px  '
                      f'max |rel err| fx/fy/cx/cy {rel * 100:.3f} %')


def bench_real(folder: str, cols: int, rows: int) -> None:
    files = sorted(f for f in glob.glob(os.path.join(folder, '*'))
                   if f.lower().endswith(('.png', '.jpg', '.jpeg', '.bmp')))
    images = [cv2.imread(f) for f in files]
    print(f'\nreal images: {len(images)} in {folder}, {cols}x{rows} chessboard')
    # Every sharp view (the CLI's default for image sets) and diverse views only (video, node).
    for label, cfg in (('edge_vision (every view)',
                        CalibratorConfig(min_views=3, min_view_distance=0, max_edge_width=0)),
                       ('edge_vision (diverse views)', CalibratorConfig(min_views=3))):
        cal = Calibrator(TargetConfig(cols=cols, rows=rows), cfg)
        t0 = time.perf_counter()
        for image in images:
            cal.add_image(image)
        result = cal.calibrate()
        dt = time.perf_counter() - t0
        m = result.model
        print(f'  {label:26s} views {cal.view_count:3d}  RMS {result.rms:.4f} px  fx {m.fx:.2f} '
              f'fy {m.fy:.2f} cx {m.cx:.2f} cy {m.cy:.2f}  ({dt:.2f} s)')
    objp = np.zeros((cols * rows, 3), np.float32)
    objp[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * 0.025
    obj, img = [], []
    t0 = time.perf_counter()
    for image in images:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        ok, corners = cv2.findChessboardCorners(gray, (cols, rows), None)
        if ok:
            criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.001)
            corners = cv2.cornerSubPix(gray, corners, (11, 11), (-1, -1), criteria)
            obj.append(objp)
            img.append(corners)
    rms, K, _, _, _ = cv2.calibrateCamera(obj, img, gray.shape[::-1], None, None)
    dt = time.perf_counter() - t0
    print(f'  {"OpenCV tutorial pipeline":26s} views {len(obj):3d}  RMS {rms:.4f} px  '
          f'fx {K[0, 0]:.2f} fy {K[1, 1]:.2f} cx {K[0, 2]:.2f} cy {K[1, 2]:.2f}  ({dt:.2f} s)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', default='640x480', help='rendered image size (640x480)')
    parser.add_argument('--views', type=int, default=40, help='rendered views (40)')
    parser.add_argument('--images', help='folder of real chessboard images to compare')
    parser.add_argument('--board', default='9x6', help='inner corners of the real board')
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split('x'))
    bench_synthetic(width, height, args.views)
    if args.images:
        cols, rows = (int(v) for v in args.board.lower().split('x'))
        bench_real(args.images, cols, rows)


if __name__ == '__main__':
    main()
