"""Run the whole detection pipeline in one process and write what it saw.

    edge-vision run                                  # the bundled 30 s street clip
    edge-vision run --source /dev/video0 --max-frames 300
    edge-vision run --source clip.mp4 --backend openvino --out results/

Camera -> preprocess -> inference (the embedded NanoDet on the chosen backend) -> tracker ->
overlay -> recorder, as real ROS 2 nodes composed in this process (frames handed over in memory;
every topic is still published for rviz or ``ros2 topic echo`` while someone subscribes). For a
file every frame goes through every stage (lossless); a live source keeps the newest frame.
Writes ``<out>/annotated.mp4``, ``<out>/tracks.jsonl`` and ``<out>/report.json``, shows progress
while it runs and prints a per-stage fps/latency table at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..stages import select_stages

HELP = 'run the full pipeline on the bundled clip (or --source) and report per-stage timing'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--source', default='',
                        help='camera ("0", /dev/video0), video file, image folder or stream URL '
                             '(default: the bundled clip)')
    parser.add_argument('--out', default='out', help='output folder (default: out)')
    parser.add_argument('--model', default='nanodet-m-416', help='model name or manifest')
    parser.add_argument('--backend', default='onnxruntime',
                        help='onnxruntime, openvino, litert or tensorrt')
    parser.add_argument('--device', default='auto', help="backend device ('auto' = best)")
    parser.add_argument('--threads', type=int, default=0, help='inference threads (0 = auto)')
    parser.add_argument('--max-frames', type=int, default=0,
                        help='stop after this many frames (0 = the whole file / until Ctrl-C)')
    parser.add_argument('--no-preprocess', action='store_true', help='skip image correction')
    parser.add_argument('--no-tracking', action='store_true', help='skip the tracker')
    parser.add_argument('--no-video', action='store_true', help='do not write annotated.mp4')
    parser.add_argument('--realtime', action='store_true',
                        help="play files at their own frame rate (newest frame wins, frames may "
                             "be dropped) instead of as fast as the pipeline goes")
    parser.add_argument('--privacy', choices=('faces', 'persons', 'faces+persons'),
                        help='anonymize before anything is written or sent (privacy_node): '
                             'the video and snapshots show only filtered frames')
    # MQTT (mqtt_bridge_node): tracks, events and health to a broker; watch with edge-vision fleet
    parser.add_argument('--mqtt', metavar='URL', default='',
                        help='also publish to this MQTT broker (mqtt://localhost:1883, '
                             'mqtts://host:8883); watch with `edge-vision fleet --broker URL`')
    parser.add_argument('--mqtt-params', metavar='FILE', default='',
                        help='parameter YAML of mqtt_bridge_node (broker.ca_file, '
                             'broker.username, broker.password_file, device_id, ...)')


def _progress(done: int, total: int, fps: float, final: bool = False) -> None:
    """A progress bar on a terminal; on a pipe/log one line per 10% (no carriage returns)."""
    if not sys.stderr.isatty():
        step = max(1, total // 10) if total else 100
        if final or done // step != getattr(_progress, 'last', -1):
            _progress.last = done // step
            sys.stderr.write(f'{done}/{total or "?"} frames  {fps:5.1f} fps\n')
        return
    width = 30
    if total:
        filled = int(width * min(done, total) / total)
        bar = '#' * filled + '-' * (width - filled)
        text = f'\r[{bar}] {done}/{total} frames  {fps:5.1f} fps'
    else:
        text = f'\r{done} frames  {fps:5.1f} fps'
    sys.stderr.write(text + ('\n' if final else ''))
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    import cv2
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from edge_vision_core import ConfigError
    from edge_vision_core.io.sources import (
        ImageFolderSource,
        SourceConfig,
        VideoFileSource,
        parse_source,
    )

    from ..dds import apply_transport_defaults
    from ..pipeline import create_pipeline

    source = args.source
    if not source:
        from edge_vision_models import sample_path
        source = str(sample_path())
    if args.max_frames < 0:
        raise ConfigError('--max-frames must be >= 0')
    kind = parse_source(source)
    is_file = kind is VideoFileSource or kind is ImageFolderSource
    lossless = is_file and not args.realtime
    total = 0
    fps_native = 10.0
    if kind is VideoFileSource:
        if not Path(source).expanduser().is_file():
            raise ConfigError(f'--source {source!r}: no such file')
        cap = cv2.VideoCapture(str(Path(source).expanduser()))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps_native = float(cap.get(cv2.CAP_PROP_FPS) or 10.0)
        cap.release()
    if args.max_frames:
        total = min(total, args.max_frames) if total else args.max_frames
    SourceConfig(source=source)  # validates the spec early

    stages = select_stages(preprocess=not args.no_preprocess, tracking=not args.no_tracking,
                           recorder=True, privacy=bool(args.privacy))
    if args.mqtt:
        stages.append('mqtt_bridge')
    overrides = {
        'camera': [Parameter('source', value=source),
                   Parameter('rate', value=-1.0 if lossless else 0.0)],
        'inference': [Parameter('model', value=args.model),
                      Parameter('backend', value=args.backend),
                      Parameter('device', value=args.device),
                      Parameter('threads', value=args.threads)],
        'recorder': [Parameter('output_dir', value=args.out),
                     Parameter('write_video', value=not args.no_video),
                     Parameter('video_fps', value=fps_native)],
        'overlay': [Parameter('diagnostics_period', value=0.0)],
    }
    if args.privacy:  # a file played losslessly is never late: no age limit
        overrides['privacy'] = [Parameter('hide', value=args.privacy),
                                Parameter('max_latency_s', value=0.0 if lossless else 0.5)]
        overrides['camera'].append(Parameter('publish_compressed', value=False))
    if args.mqtt:
        from ..mqtt_bridge_node import parameter_overrides
        overrides['mqtt_bridge'] = parameter_overrides(args.mqtt, args.mqtt_params)
    print(apply_transport_defaults())
    context = Context()
    rclpy.init(context=context, args=[])
    comp = None
    try:
        comp = create_pipeline(stages, context=context, parameter_overrides=overrides,
                               lossless=lossless)
        errors = comp.start()
        if errors:
            raise ConfigError('; '.join(errors))
        nodes = dict(zip(stages, comp.nodes, strict=True))
        camera, recorder = nodes['camera'], nodes['recorder']
        if args.mqtt:
            print(f'MQTT: {args.mqtt} under {nodes["mqtt_bridge"].bridge.topics.base}/ (watch: '
                  f'edge-vision fleet --broker {args.mqtt})')
        start, cpu_start = time.monotonic(), time.process_time()
        last_progress = last_change = 0.0
        last_count = -1
        print(f'edge-vision run: {source} -> {args.out}/ '
              f'({"every frame" if lossless else "newest frame"}; stages: '
              f'{" -> ".join(stages)})')
        while True:
            comp.spin_once(timeout_sec=0.05)
            now = time.monotonic()
            done = recorder.frames
            if done != last_count:
                last_count, last_change = done, now
            if now - last_progress > 0.2:
                _progress(done, total, done / max(1e-6, now - start))
                last_progress = now
            if args.max_frames and done >= args.max_frames:
                break
            finished = camera.state == 'finished'
            if finished and done >= camera.frames_published:
                break
            if finished and now - last_change > 10.0:
                break  # frames lost to the gate or errors: do not wait forever
        elapsed, cpu = time.monotonic() - start, time.process_time() - cpu_start
        # the annotated frames trail the tracks by a stage: let the last ones reach the video
        drain = time.monotonic() + 3.0
        while not args.no_video and recorder.video_frames < recorder.frames and \
                time.monotonic() < drain:
            comp.spin_once(timeout_sec=0.05)
        _progress(recorder.frames, total, recorder.frames / max(1e-6, elapsed), final=True)
        report = _report(nodes, elapsed, cpu)
        out = recorder.output_dir
    except KeyboardInterrupt:
        sys.stderr.write('\ninterrupted\n')
        return 130
    finally:
        if comp is not None:
            comp.shutdown()
        rclpy.try_shutdown(context=context)
    _print_report(report)
    (out / 'report.json').write_text(json.dumps(report, indent=1))
    print(f'wrote {out / "tracks.jsonl"}, {out / "report.json"}'
          + ('' if args.no_video else f', {out / "annotated.mp4"}'))
    return 0


def _report(nodes: dict, elapsed: float, cpu: float = float('nan')) -> dict:
    import numpy as np

    stages = {name: node.stats() for name, node in nodes.items()}
    recorder = nodes['recorder']
    lat = np.array(recorder.latencies_ms or [np.nan])  # the latest LATENCY_HISTORY frames
    return {
        'frames': recorder.frames, 'seconds': elapsed,
        'fps': recorder.frames / max(1e-6, elapsed),
        # CPU of the whole process (every thread) per frame: less sensitive to other load
        'cpu_ms_per_frame': cpu * 1e3 / max(1, recorder.frames),
        'end_to_end_latency_ms': {'p50': float(np.nanpercentile(lat, 50)),
                                  'p95': float(np.nanpercentile(lat, 95))},
        'stages': stages,
    }


def _print_report(report: dict) -> None:
    rows = [
        ('camera', 'frames read', report['stages']['camera'].get('frames_published')),
        ('preprocess', 'process ms p50 / p95', _pair(report, 'preprocess', 'process')),
        ('inference', 'pre ms p50 / p95', _pair(report, 'inference', 'pre')),
        ('inference', 'infer ms p50 / p95', _pair(report, 'inference', 'infer')),
        ('inference', 'post ms p50 / p95', _pair(report, 'inference', 'post')),
        ('tracker', 'update ms p50 / p95', _pair(report, 'tracker', 'update')),
        ('privacy', 'filter ms p50 / p95', _pair(report, 'privacy', 'filter')),
        ('privacy', 'frames filtered / withheld', _counts(report, 'privacy', 'frames_published',
                                                          'frames_withheld')),
        ('overlay', 'draw ms p50', _fmt(report['stages'].get('overlay', {})
                                        .get('draw_ms_p50'))),
        ('pipeline', 'frames / seconds / fps',
         f'{report["frames"]} / {report["seconds"]:.1f} / {report["fps"]:.1f}'),
        ('pipeline', 'camera stamp -> tracks ms p50 / p95',
         f'{report["end_to_end_latency_ms"]["p50"]:.1f} / '
         f'{report["end_to_end_latency_ms"]["p95"]:.1f}'),
    ]
    print(f'{"stage":<12} {"measure":<36} value')
    for stage, measure, value in rows:
        if value is not None and stage in report['stages'] or stage == 'pipeline':
            print(f'{stage:<12} {measure:<36} {value}')


def _counts(report: dict, stage: str, *keys: str) -> str | None:
    values = report['stages'].get(stage)
    return ' / '.join(str(values.get(key, 0)) for key in keys) if values else None


def _pair(report: dict, stage: str, key: str) -> str | None:
    values = report['stages'].get(stage)
    if not values or f'{key}_ms_p50' not in values:
        return None
    return f'{values[f"{key}_ms_p50"]:.1f} / {values[f"{key}_ms_p95"]:.1f}'


def _fmt(value: object) -> str | None:
    return None if value is None else f'{float(value):.1f}'
