"""What recording a rosbag2 MCAP bag costs: per frame, on disk, and on the pipeline.

1. Per frame, in this process, on the bundled clip's frames: JPEG (quality 90) or PNG encode +
   CompressedImage + rclpy serialize + BagWriter.write, and the same for one tracks message
   (Detection2DArray with the frame's detections); bytes per frame -> MB per minute at 10 and
   30 frames per second.
2. The pipeline: ``edge-vision run`` on the clip (every frame) without a bag, with a JPEG bag
   and with a PNG bag: frames per second from report.json, and the bag's size.

    .venv/bin/python benchmarks/bench_record.py [--frames 100] [--no-pipeline]

Numbers depend on the machine's load: run it on an idle machine, or compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2


def per_frame(frames: list, fmt: str, tmp: Path) -> dict[str, float]:
    from rclpy.serialization import serialize_message

    from edge_vision.conversions import detections_to_msg, meta_to_header, numpy_to_compressed
    from edge_vision_core import FrameMeta
    from edge_vision_core.bag import BagConfig, BagTopic, BagWriter, full_definition
    from edge_vision_core.types import Detections

    image_type, dets_type = 'sensor_msgs/msg/CompressedImage', 'vision_msgs/msg/Detection2DArray'
    path = tmp / f'bench_{fmt}.mcap'
    dets = Detections([[10 * i, 20, 10 * i + 40, 120] for i in range(8)], [0.9] * 8, [0] * 8,
                      list(range(8)))
    image_ms, tracks_ms = [], []
    with BagWriter(BagConfig(path=str(path))) as writer:
        writer.add_topic(BagTopic('/image_raw/compressed', image_type,
                                  full_definition(image_type)))
        writer.add_topic(BagTopic('/tracks', dets_type, full_definition(dets_type)))
        for i, image in enumerate(frames):
            header = meta_to_header(FrameMeta(1_000_000_000 + i * 100_000_000, 'cam'))
            start = time.perf_counter()
            msg = numpy_to_compressed(image, 'bgr8', fmt, 90, header)
            writer.write('/image_raw/compressed', serialize_message(msg), i)
            mid = time.perf_counter()
            writer.write('/tracks', serialize_message(
                detections_to_msg(dets, header, ['person'])), i)
            end = time.perf_counter()
            image_ms.append((mid - start) * 1e3)
            tracks_ms.append((end - mid) * 1e3)
    size = path.stat().st_size
    return {'image_ms': statistics.median(image_ms), 'tracks_ms': statistics.median(tracks_ms),
            'bytes_per_frame': size / len(frames)}


def pipeline(frames: int, bag: str | None, tmp: Path) -> tuple[float, int]:
    out = tmp / f'run_{bag or "none"}'
    args = [sys.executable, '-m', 'edge_vision.cli', 'run', '--max-frames', str(frames),
            '--no-video', '--out', str(out)]
    if bag:
        args += ['--bag', str(out / 'run.mcap'), '--bag-format', bag]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        raise SystemExit(proc.stdout + proc.stderr)
    report = json.loads((out / 'report.json').read_text())
    size = (out / 'run.mcap').stat().st_size if bag else 0
    return report['fps'], size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--no-pipeline', action='store_true')
    args = parser.parse_args()
    from edge_vision_models import sample_path

    cap = cv2.VideoCapture(str(sample_path()))
    frames = []
    while len(frames) < args.frames:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    h, w = frames[0].shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f'recording cost per frame ({len(frames)} frames of {w}x{h}, median)')
        print(f'{"images":<8} {"image ms":>9} {"tracks ms":>10} {"KB/frame":>9} '
              f'{"MB/min @10fps":>14} {"MB/min @30fps":>14}')
        for fmt in ('jpeg', 'png'):
            r = per_frame(frames, fmt, tmp)
            mb_min = r['bytes_per_frame'] * 60 / 1e6
            print(f'{fmt:<8} {r["image_ms"]:>9.2f} {r["tracks_ms"]:>10.3f} '
                  f'{r["bytes_per_frame"] / 1e3:>9.1f} {mb_min * 10:>14.1f} '
                  f'{mb_min * 30:>14.1f}')
        if args.no_pipeline:
            return 0
        print(f'\nedge-vision run, {args.frames} frames, every frame (composed pipeline)')
        print(f'{"bag":<8} {"fps":>6} {"bag MB":>8}')
        for bag in (None, 'jpeg', 'png'):
            fps, size = pipeline(args.frames, bag, tmp)
            print(f'{bag or "none":<8} {fps:>6.1f} {size / 1e6:>8.1f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
