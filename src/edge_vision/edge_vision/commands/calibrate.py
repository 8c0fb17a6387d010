"""Calibrate a camera from images or a video of a chessboard or ChArUco board.

Reads every image of a folder (or a glob such as 'shots/*.png', or the frames of a video),
finds the target, keeps the sharp views (of a video: the sharp frames that add diversity in
position, size and tilt of the board, like ROS camera_calibration's X / Y / Size / Skew bars),
fits the camera model and reports the RMS reprojection error and the error of every view.
With --out it writes the camera_info YAML that camera_info_manager (and edge_vision's
camera_node) reads; with --set-camera-info it sends the calibration to a running camera
driver's sensor_msgs/srv/SetCameraInfo service, which stores it at its camera_info_url.

Sizes: for a chessboard --size counts INNER corners (a board of 10x7 squares is 9x6); for a
ChArUco board it counts squares. --square is the side of one square in metres.

Examples:
  edge-vision calibrate shots/ --size 9x6 --square 0.025 --out ~/.ros/camera_info/cam0.yaml
  edge-vision calibrate 'shots/*.jpg' --pattern charuco --size 11x8 --square 0.03 \\
      --marker 0.022 --dictionary DICT_5X5_100 --model rational
  edge-vision calibrate board.mp4 --every 5 --size 8x6 --square 0.03 --model fisheye \\
      --camera-name front --set-camera-info /front/set_camera_info
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

HELP = 'calibrate a camera from images/video of a chessboard or ChArUco board'



def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group('input')
    src.add_argument('source', help='folder of images, a quoted glob, or a video file')
    src.add_argument('--every', type=int, default=1, metavar='N',
                     help='video: use every N-th frame (1)')
    src.add_argument('--until-ready', action='store_true',
                     help='stop reading once coverage is complete (useful for long videos)')
    tgt = parser.add_argument_group('target')
    tgt.add_argument('--pattern', choices=('chessboard', 'charuco'), default='chessboard',
                     help='target kind (chessboard)')
    tgt.add_argument('--size', default='9x6', metavar='COLSxROWS',
                     help='chessboard: inner corners; ChArUco: squares (9x6)')
    tgt.add_argument('--square', type=float, default=0.025, metavar='M',
                     help='side of one square in metres (0.025)')
    tgt.add_argument('--marker', type=float, default=0.0, metavar='M',
                     help='ChArUco: marker side in metres (0 = 0.75 x square)')
    tgt.add_argument('--dictionary', default='DICT_4X4_50',
                     help='ChArUco: ArUco dictionary (DICT_4X4_50)')
    tgt.add_argument('--legacy-pattern', action='store_true',
                     help='ChArUco: board made with OpenCV < 4.6 (matters for even rows)')
    tgt.add_argument('--detector', choices=('classic', 'sectors'), default='classic',
                     help='chessboard detector: classic (findChessboardCorners) or sectors '
                          '(findChessboardCornersSB, more robust to blur)')
    tgt.add_argument('--refine-window', type=int, default=0, metavar='PX',
                     help='half-size of the sub-pixel corner window; 0 = adapted to the '
                          'corner spacing (0; OpenCV\'s tutorial uses 11)')
    sel = parser.add_argument_group('view selection')
    sel.add_argument('--min-views', type=int, default=10, help='fewest views to calibrate (10)')
    sel.add_argument('--min-distance', type=float, default=None,
                     help='diversity: keep a view only if its x/y/size/skew differ this much '
                          '(L1) from every kept view; 0 keeps all (default: 0 for images, '
                          'which are usually chosen by hand, 0.2 for video frames)')
    sel.add_argument('--max-edge-width', type=float, default=5.0, metavar='PX',
                     help='reject views blurrier than this edge width; 0 = no check (5)')
    sel.add_argument('--max-speed', type=float, default=0.0, metavar='PX',
                     help='video: reject frames where the board moved more than this many '
                          'pixels since the previous frame; 0 = no check (0)')
    sol = parser.add_argument_group('model')
    sol.add_argument('--model', choices=('pinhole', 'rational', 'fisheye'), default='pinhole',
                     help='pinhole = plumb_bob, rational = rational_polynomial, fisheye = '
                          'equidistant (pinhole)')
    sol.add_argument('--fix-aspect-ratio', action='store_true', help='force fx = fy')
    sol.add_argument('--fix-principal-point', action='store_true',
                     help='keep the principal point at the image centre')
    sol.add_argument('--zero-tangent', action='store_true',
                     help='pinhole: no tangential distortion')
    sol.add_argument('--alpha', type=float, default=0.0,
                     help='P scaling: 0 = valid pixels only, 1 = all pixels (0)')
    sol.add_argument('--outlier-px', type=float, default=1.0, metavar='PX',
                     help='refit without corners whose error exceeds max(PX, 5 x median); '
                          '0 keeps every corner (1)')
    out = parser.add_argument_group('output')
    out.add_argument('--camera-name', default='camera',
                     help='camera_name stored in the YAML (camera_info_manager checks it)')
    out.add_argument('--out', metavar='FILE.yaml', help='write the camera_info YAML here')
    out.add_argument('--set-camera-info', metavar='SERVICE',
                     help='also send it to this sensor_msgs/srv/SetCameraInfo service, e.g. '
                          '/camera0/set_camera_info (needs rclpy)')
    out.add_argument('--timeout', type=float, default=10.0,
                     help='seconds to wait for the service (10)')
    out.add_argument('--quiet', action='store_true', help='no per-image lines')


def _parse_size(text: str) -> tuple[int, int]:
    from edge_vision_core import ConfigError
    try:
        cols, rows = (int(v) for v in text.lower().replace('*', 'x').split('x'))
    except ValueError:
        raise ConfigError(f'--size must look like 9x6 (columns x rows), got {text!r}') from None
    return cols, rows


def _is_video(source: str) -> bool:
    from edge_vision_core.io.sources import VideoFileSource, parse_source
    return parse_source(source) is VideoFileSource


def _frames(source: str, every: int) -> Iterator[tuple[str, object]]:
    """``(name, image)`` for each image file or every N-th video frame; unreadable images are
    skipped with a line on stderr. The source is opened at once (errors before any output)."""
    from edge_vision_core.io.sources import read_frames

    video = _is_video(source)
    frames = read_frames(source, every=every if video else 1,
                         on_corrupt=lambda exc: print(f'  {exc}; skipped', file=sys.stderr))
    return ((f'frame {f.index}' if video else f.name, f.image) for f in frames)


def _set_camera_info(service: str, model: object, timeout: float) -> str:
    """Call ``service`` (sensor_msgs/srv/SetCameraInfo) with ``model``; its status message."""
    from edge_vision_core import CalibrationError

    from ..dds import apply_transport_defaults
    apply_transport_defaults()
    try:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.srv import SetCameraInfo
    except ImportError as exc:
        raise CalibrationError(f'--set-camera-info needs rclpy and sensor_msgs ({exc}); source '
                               'a ROS 2 installation or run make setup') from None
    from ..conversions import model_to_camera_info

    context = Context()
    rclpy.init(context=context)
    node = None
    try:
        node = rclpy.create_node('edge_vision_calibrate', context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        client = node.create_client(SetCameraInfo, service)
        if not client.wait_for_service(timeout_sec=timeout):
            raise CalibrationError(
                f'service {service} (sensor_msgs/srv/SetCameraInfo) did not appear within '
                f'{timeout:g} s; is the camera driver running, in this ROS_DOMAIN_ID? '
                '(`ros2 service list -t` shows the services)')
        request = SetCameraInfo.Request()
        request.camera_info = model_to_camera_info(model)
        future = client.call_async(request)
        executor.spin_until_future_complete(future, timeout_sec=timeout)
        if not future.done():
            raise CalibrationError(f'service {service} did not answer within {timeout:g} s')
        response = future.result()
        if not response.success:
            raise CalibrationError(f'{service} refused the calibration: '
                                   f'{response.status_message or "no reason given"}')
        return response.status_message
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def run(args: argparse.Namespace) -> int:
    from edge_vision_core import CalibrationError, ConfigError
    from edge_vision_core.calibration import (
        Calibrator,
        CalibratorConfig,
        TargetConfig,
        save_camera_info,
    )

    if args.every < 1:
        raise ConfigError(f'--every must be >= 1, got {args.every}')
    cols, rows = _parse_size(args.size)
    target = TargetConfig(pattern=args.pattern, cols=cols, rows=rows, square_size=args.square,
                          marker_size=args.marker, dictionary=args.dictionary,
                          legacy_pattern=args.legacy_pattern,
                          chessboard_detector=args.detector, refine_window=args.refine_window)
    frames = _frames(args.source, args.every)
    is_video = _is_video(args.source)
    min_distance = args.min_distance
    if min_distance is None:
        min_distance = 0.2 if is_video else 0.0
    config = CalibratorConfig(model=args.model, min_view_distance=min_distance,
                              max_edge_width=args.max_edge_width,
                              max_board_speed=args.max_speed, min_views=args.min_views,
                              enough_views=max(40, args.min_views),
                              max_views=max(100, args.min_views),
                              fix_aspect_ratio=args.fix_aspect_ratio,
                              fix_principal_point=args.fix_principal_point,
                              zero_tangent_dist=args.zero_tangent, alpha=args.alpha,
                              outlier_px=args.outlier_px)
    calibrator = Calibrator(target, config)
    print(f'target: {calibrator.target.describe()}; model: {args.model}')
    for name, image in frames:
        verdict = calibrator.add_image(image, name)
        if calibrator.mismatch is not None:
            raise CalibrationError(
                f'found no {calibrator.target.describe()} in the first '
                f'{calibrator.images_seen} images; {calibrator.mismatch.message}')
        quiet_reason = is_video and verdict.reason in ('no_target', 'redundant')
        if not args.quiet and not quiet_reason:
            print(f'  {verdict.message}  [{calibrator.progress().summary()}]')
        if args.until_ready and calibrator.ready:
            print('  coverage complete: stopping (--until-ready)')
            break
    print(f'views: {calibrator.explain()}')
    result = calibrator.calibrate()
    print(result.report(calibrator.view_names))
    if result.rms > 1.0:
        print(f'warning: RMS {result.rms:.2f} px is high; check --size/--square, remove '
              'blurred or wrongly detected images (largest per-view errors above)',
              file=sys.stderr)
    if args.out:
        save_camera_info(Path(args.out).expanduser(), result.model, args.camera_name)
        print(f'wrote {args.out}')
    if args.set_camera_info:
        status = _set_camera_info(args.set_camera_info, result.model, args.timeout)
        print(f'{args.set_camera_info}: accepted' + (f' ({status})' if status else ''))
    if not args.out and not args.set_camera_info:
        print('(nothing saved: add --out FILE.yaml or --set-camera-info SERVICE)')
    return 0
