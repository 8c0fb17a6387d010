"""Run the whole detection pipeline in one process and write what it saw.

    edge-vision run                                  # the bundled 30 s street clip
    edge-vision run --source /dev/video0             # until Ctrl-C (report written)
    edge-vision run --source clip.mp4 --backend openvino --out results/
    edge-vision run --loop --duration 600            # the clip over and over for 10 minutes
    edge-vision run --source /dev/video0 --source /dev/video2   # two cameras
    edge-vision run --cameras 4 --loop --duration 60 # four cameras on the bundled clip
    edge-vision run --bag out/run.mcap               # also record a rosbag2 MCAP bag
    edge-vision run --source out/run.mcap --bag out/replay.mcap   # replay a recording
    edge-vision run --web :8080                      # live view at http://127.0.0.1:8080/
    edge-vision run --model nanodet-m-416             # the FP32 detector instead of auto
    edge-vision run --tune                           # tune this device first if it has no tuning

The default model is ``auto``: the configuration ``edge-vision tune`` chose and cached for this
device, or, before any tuning, the shipped INT8 NanoDet (agreement mAP@0.5 0.970 / 0.978 with
the FP32 file; about 3x its fps in this pipeline here); the line ``inference:`` at the start says
which.

Camera -> preprocess -> inference (the embedded NanoDet on the chosen backend) -> tracker ->
overlay -> recorder, as real ROS 2 nodes composed in this process (frames handed over in memory;
every topic is still published for rviz or ``ros2 topic echo`` while someone subscribes). For a
file every frame goes through every stage (lossless); a live source keeps the newest frame.
Writes ``<out>/annotated.mp4``, ``<out>/tracks.jsonl`` and ``<out>/report.json``, shows progress
while it runs and prints a per-stage fps/latency table at the end. ``--ocr`` adds ocr_node (text
of every frame, or with ``--ocr-classes`` only inside those detections): the video shows the
lines and ``<out>/text.jsonl`` has them.

Several cameras (``--source`` given more than once, or ``--cameras N``) each get their own
chain in the namespaces ``/camera0``, ``/camera1``... and their own ``<out>/camera<i>/`` files;
``<out>/report.json`` then holds every camera's report and the totals. Their inference nodes
share one detector (``batch_group``; one per worker of the plan) that infers the frames waiting
from every camera as one batch; ``--no-batch`` gives each camera its own detector(s) instead
(``benchmarks/bench_run_cameras.py`` compares).

Stopping: at the end of the files, after ``--max-frames`` frames per camera, after
``--duration`` seconds, or on the first Ctrl-C (or SIGTERM), which stops the sources and still
writes the report (exit code 0); a second Ctrl-C aborts without it (exit code 130).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..stages import select_stages
from . import FieldDefault, StopSignals, given

HELP = 'run the full pipeline on the bundled clip (or --source) and report per-stage timing'
#: the arguments whose defaults are DetectorOptions' (one place for them)
OPTION_ARGS = ('model', 'backend', 'device', 'threads')


def _option(name: str) -> FieldDefault:
    return FieldDefault(f'edge_vision_core.inference:DetectorOptions.{name}')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--source', action='append', default=[], metavar='SOURCE',
                        help='camera ("0", /dev/video0), video file, image folder or stream URL '
                             '(default: the bundled clip); give it again for more cameras')
    parser.add_argument('--cameras', type=int, default=0, metavar='N',
                        help='run N cameras (namespaces /camera0..); with one --source (or '
                             'none) every camera reads it')
    parser.add_argument('--no-batch', action='store_true',
                        help='several cameras: one detector per camera instead of one shared '
                             'detector inferring the waiting frame of every camera as a batch')
    parser.add_argument('--out', default='out', help='output folder (default: out)')
    parser.add_argument('--model', default='auto',
                        help="model name or manifest; 'auto' (default): this device's tuned "
                             'choice (edge-vision tune), else the shipped INT8 NanoDet')
    parser.add_argument('--workers', type=int, default=0,
                        help='inference pool workers (0 = auto: the tuned plan, else one)')
    parser.add_argument('--tune', action='store_true',
                        help='with --model auto: tune this device first when it has no '
                             'tuning (about a minute; cached)')
    parser.add_argument('--backend', default=_option('backend'),
                        help='onnxruntime, openvino, litert or tensorrt (default: %(default)s)')
    parser.add_argument('--device', default=_option('device'),
                        help="backend device (default: %(default)s = the backend's best)")
    parser.add_argument('--threads', type=int, default=_option('threads'),
                        help='inference threads (default: %(default)s = auto)')
    parser.add_argument('--max-frames', type=int, default=0,
                        help='stop after this many frames per camera (0 = the whole file / '
                             'until Ctrl-C)')
    parser.add_argument('--duration', type=float, default=0.0, metavar='SECONDS',
                        help='stop after this many seconds (0 = no limit)')
    parser.add_argument('--loop', action='store_true',
                        help='play files over and over (stop with --duration, --max-frames or '
                             'Ctrl-C)')
    parser.add_argument('--no-preprocess', action='store_true', help='skip image correction')
    parser.add_argument('--no-tracking', action='store_true', help='skip the tracker')
    parser.add_argument('--no-video', action='store_true', help='do not write annotated.mp4')
    parser.add_argument('--realtime', action='store_true',
                        help="play files at their own frame rate (newest frame wins, frames may "
                             "be dropped) instead of as fast as the pipeline goes")
    # OCR (ocr_node): text drawn on the video and written to text.jsonl
    parser.add_argument('--ocr', action='store_true',
                        help='also read text (ocr_node): drawn on the video, written to '
                             '<out>/text.jsonl (and sent over MQTT with --mqtt)')
    parser.add_argument('--ocr-classes', metavar='NAMES', default='',
                        help='with --ocr: read only inside detections of these classes '
                             '(comma-separated, e.g. "stop sign"; default: whole frames)')
    parser.add_argument('--privacy', choices=('faces', 'persons', 'faces+persons'),
                        help='anonymize before anything is written or sent (privacy_node): '
                             'the video, bag images, snapshots and web/foxglove views show '
                             'only filtered frames')
    # MQTT (mqtt_bridge_node): tracks, events and health to a broker; watch with edge-vision fleet
    parser.add_argument('--mqtt', metavar='URL', default='',
                        help='also publish to this MQTT broker (mqtt://localhost:1883, '
                             'mqtts://host:8883); watch with `edge-vision fleet --broker URL`')
    parser.add_argument('--mqtt-params', metavar='FILE', default='',
                        help='parameter YAML of mqtt_bridge_node (broker.ca_file, '
                             'broker.username, broker.password_file, device_id, ...)')
    bag = parser.add_argument_group('recording (rosbag2 MCAP)')
    bag.add_argument('--bag', default='', metavar='PATH',
                     help='record a bag: PATH.mcap (one file) or a folder (rosbag2 bag, '
                          'can be split)')
    bag.add_argument('--bag-format', default='jpeg', choices=('jpeg', 'png'),
                     help='image compression in the bag (png: lossless, replays reproduce '
                          'the live results exactly)')
    bag.add_argument('--bag-split-mb', type=float, default=0.0,
                     help='start a new file of the bag folder at this size')
    bag.add_argument('--bag-max-mb', type=float, default=0.0,
                     help='keep the bag folder under this size (oldest files removed)')
    view = parser.add_argument_group('live view')
    view.add_argument('--web', default='', metavar='[HOST]:PORT',
                      help='serve the live web view (bound to 127.0.0.1 unless HOST is given)')
    view.add_argument('--web-token', default='',
                      help='require this token (header "Authorization: Bearer T" or ?token=T)')
    view.add_argument('--foxglove', default='', metavar='[HOST]:PORT',
                      help='Foxglove WebSocket server (foxglove-sdk) with the same channels')


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


def _plan(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``(namespace, source)`` per camera ('' namespace for a single camera)."""
    from edge_vision_core import ConfigError

    sources = list(args.source)
    if not sources:
        from edge_vision_models import sample_path
        sources = [str(sample_path())]
    if args.cameras < 0:
        raise ConfigError('--cameras must be >= 0')
    if args.cameras:
        if len(sources) == 1:
            sources = sources * args.cameras
        elif len(sources) != args.cameras:
            raise ConfigError(f'--cameras {args.cameras} with {len(sources)} --source values: '
                              f'give one source (read by every camera) or one per camera')
    if len(sources) == 1:
        return [('', sources[0])]
    return [(f'/camera{i}', source) for i, source in enumerate(sources)]


def _file_facts(source: str) -> tuple[int, float]:
    """``(frame count, fps)`` of a video file (0 and 10 for other sources)."""
    from edge_vision_core import ConfigError
    from edge_vision_core.io.sources import (
        BagSource,
        SourceConfig,
        VideoFileSource,
        parse_source,
        video_facts,
    )

    SourceConfig(source=source)  # validates the spec early
    kind = parse_source(source)
    if kind is BagSource:
        bag = BagSource(SourceConfig(source=source))
        bag.open()  # names a missing bag or image topic now, not in the camera thread
        try:
            return bag.frame_count, bag.native_fps or 10.0
        finally:
            bag.close()
    if kind is not VideoFileSource:
        return 0, 10.0
    if not Path(source).expanduser().is_file():
        raise ConfigError(f'--source {source!r}: no such file')
    total, fps = video_facts(source)
    return total, fps or 10.0


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from edge_vision_core import ConfigError
    from edge_vision_core.io.sources import (
        BagSource,
        ImageFolderSource,
        VideoFileSource,
        parse_source,
    )

    from ..compose import Composition
    from ..dds import apply_transport_defaults
    from ..pipeline import pipeline_factories

    if args.max_frames < 0 or args.duration < 0:
        raise ConfigError('--max-frames and --duration must be >= 0')
    if args.workers < 0:
        raise ConfigError('--workers must be >= 0 (0 = auto)')
    plan = _plan(args)
    kinds = [parse_source(source) for _, source in plan]
    is_file = all(k in (VideoFileSource, ImageFolderSource, BagSource) for k in kinds)
    lossless = is_file and not args.realtime
    replay = any(k is BagSource for k in kinds)
    if len(plan) > 1 and (args.bag or args.web or args.foxglove):
        raise ConfigError('--bag, --web and --foxglove serve one camera: run one edge-vision run '
                          'per camera for them (or use detect.launch.py per namespace)')
    facts = [_file_facts(source) for _, source in plan]
    total = 0 if args.loop or not all(count for count, _ in facts) else \
        sum(count for count, _ in facts)
    if args.max_frames:
        cap = args.max_frames * len(plan)
        total = min(total, cap) if total else cap

    stages = select_stages(preprocess=not args.no_preprocess, tracking=not args.no_tracking,
                           recorder=True, ocr=args.ocr, privacy=bool(args.privacy))
    if args.mqtt:
        stages.append('mqtt_bridge')
    if args.web:
        stages.append('web')
    if args.foxglove:
        stages.append('foxglove')
    from ..pipeline import parse_stages
    stages = list(parse_stages(stages))  # the pipeline's order: nodes are zipped with it below
    options = [Parameter(name, value=value)
               for name, value in given(args, OPTION_ARGS).items()]
    options.append(Parameter('workers', value=args.workers))
    batched = len(plan) > 1 and not args.no_batch
    if batched:
        options.append(Parameter('batch_group', value='run'))
    print(_inference_plan(args, batched))
    out_root = Path(args.out)
    print(apply_transport_defaults())
    context = Context()
    rclpy.init(context=context, args=[])
    comp = None
    chains: list[tuple[str, dict]] = []
    try:
        factories = []
        mqtt = []
        if args.mqtt:
            from ..mqtt_bridge_node import parameter_overrides
            mqtt = parameter_overrides(args.mqtt, args.mqtt_params)
        for (namespace, source), (_, fps) in zip(plan, facts, strict=True):
            out = out_root / namespace.strip('/') if namespace else out_root
            overrides = {
                'camera': [Parameter('source', value=source),
                           Parameter('loop', value=args.loop),
                           Parameter('rate', value=-1.0 if lossless else 0.0),
                           # a file played losslessly stops at exactly --max-frames frames
                           Parameter('max_frames', value=args.max_frames if lossless else 0)],
                'inference': options,
                'recorder': [Parameter('output_dir', value=str(out)),
                             Parameter('write_video', value=not args.no_video),
                             Parameter('video_fps', value=fps)],
                'overlay': [Parameter('diagnostics_period', value=0.0)],
            }
            if args.privacy:  # a file played losslessly is never late: no age limit
                overrides['privacy'] = [
                    Parameter('hide', value=args.privacy),
                    Parameter('max_latency_s', value=0.0 if lossless else 0.5)]
                overrides['camera'].append(Parameter('publish_compressed', value=False))
            if args.mqtt:
                overrides['mqtt_bridge'] = mqtt
            if args.ocr:
                _ocr_overrides(overrides, args)
            if args.bag:
                overrides['recorder'] += [
                    Parameter('bag.path', value=args.bag),
                    Parameter('bag.image_format', value=args.bag_format),
                    Parameter('bag.split_size_mb', value=args.bag_split_mb),
                    Parameter('bag.max_total_mb', value=args.bag_max_mb)]
            if args.web:
                from ..web_node import web_parameters
                overrides['web'] = web_parameters(args.web, args.web_token)
            if args.foxglove:
                from ..foxglove_node import foxglove_parameters
                overrides['foxglove'] = foxglove_parameters(args.foxglove)
            factories += pipeline_factories(stages, context=context, namespace=namespace,
                                            parameter_overrides=overrides)
        comp = Composition(factories, context=context, lossless=lossless)
        errors = comp.start()
        if errors:
            raise ConfigError('; '.join(errors))
        for i, (namespace, _) in enumerate(plan):
            nodes = comp.nodes[i * len(stages):(i + 1) * len(stages)]
            chains.append((namespace.strip('/'), dict(zip(stages, nodes, strict=True))))
        if args.mqtt:
            bases = ', '.join(n['mqtt_bridge'].bridge.topics.base for _, n in chains)
            print(f'MQTT: {args.mqtt} under {bases}/ (watch: edge-vision fleet --broker '
                  f'{args.mqtt})')
        sources = ', '.join(f'{ns or "camera"}: {src}' for ns, src in plan) \
            if len(plan) > 1 else plan[0][1]
        print(f'edge-vision run: {sources} -> {args.out}/ '
              f'({"every frame" if lossless else "newest frame"}; stages: '
              f'{" -> ".join(stages)})')
        with StopSignals('stopping and writing the report') as stop:
            cpu_start = time.process_time()
            elapsed = _spin(comp, chains, args, total, stop)
            cpu = time.process_time() - cpu_start
            stopped_by = stop.requested
            # the annotated frames trail the tracks by a stage: let the last ones reach the
            # video (the sources are stopped first, so nothing new comes in meanwhile)
            for _, nodes in chains:
                nodes['camera'].release()
            # (and text, which takes up to seconds a frame on a busy CPU: it gets longer)
            drain = time.monotonic() + (30.0 if args.ocr else 3.0)
            while time.monotonic() < drain and any(_trailing(n['recorder'], args)
                                                   for _, n in chains):
                comp.spin_once(timeout_sec=0.05)
            # the bag takes the results, OCR text and the nodes' health over DDS: let them arrive
            drain = time.monotonic() + 5.0
            while time.monotonic() < drain and any(
                    n['recorder'].bag is not None and
                    n['recorder'].bag.waiting(n['recorder'].frames, n['recorder'].text_frames)
                    for _, n in chains):
                comp.spin_once(timeout_sec=0.05)
            # what the MQTT bridge still holds for the broker (the run may end during an
            # outage) goes out before the report, waiting up to its flush_timeout_s for the
            # link to return; what is left stays in its store for the next start
            for _, nodes in chains:
                bridge = getattr(nodes.get('mqtt_bridge'), 'bridge', None)
                if bridge is not None:
                    bridge.link.drain(bridge.cfg.flush_timeout_s)
        done = sum(n['recorder'].frames for _, n in chains)
        _progress(done, total, done / max(1e-6, elapsed), final=True)
        reports = [(name, _report(nodes, elapsed, latency=not replay),
                    nodes['recorder'].output_dir) for name, nodes in chains]
        for _, report, _ in reports:
            # CPU of the whole process (every thread, every camera) per frame: less sensitive
            # to other load on the machine than fps
            report['cpu_ms_per_frame'] = cpu * 1e3 / max(1, done)
    except KeyboardInterrupt:
        sys.stderr.write('\ninterrupted: no report written\n')
        return 130
    finally:
        if comp is not None:
            comp.shutdown()
        rclpy.try_shutdown(context=context)
    for name, report, out in reports:
        if stopped_by:
            report['stopped_by'] = stopped_by
        if len(reports) > 1:
            print(f'-- {name}')
        _print_report(report)
        (out / 'report.json').write_text(json.dumps(report, indent=1))
        print(f'wrote {out / "tracks.jsonl"}, {out / "report.json"}'
              + ('' if args.no_video else f', {out / "annotated.mp4"}')
              + (f', {args.bag}' if args.bag else ''))
    if len(reports) > 1:
        frames = sum(r['frames'] for _, r, _ in reports)
        summary = {'cameras': {name: r for name, r, _ in reports}, 'frames': frames,
                   'seconds': elapsed, 'fps': frames / max(1e-6, elapsed)}
        if stopped_by:
            summary['stopped_by'] = stopped_by
        out_root.mkdir(parents=True, exist_ok=True)
        (out_root / 'report.json').write_text(json.dumps(summary, indent=1))
        print(f'{len(reports)} cameras: {frames} frames in {elapsed:.1f} s '
              f'({summary["fps"]:.1f} fps in all); wrote {out_root / "report.json"}')
    return 0


def _ocr_overrides(overrides: dict, args: argparse.Namespace) -> None:
    """``--ocr``: the ocr stage's mode, the overlay draws and the recorder (and MQTT) take
    its text."""
    from rclpy.parameter import Parameter

    overrides['overlay'] = [*overrides['overlay'], Parameter('show_text', value=True)]
    overrides['recorder'] = [*overrides['recorder'], Parameter('write_text', value=True)]
    classes = [c.strip() for c in args.ocr_classes.split(',') if c.strip()]
    overrides['ocr'] = [Parameter('mode', value='roi' if classes else 'full_frame')]
    overrides['ocr'] += [Parameter('roi_classes', value=classes)] if classes else []
    if args.mqtt:
        overrides['mqtt_bridge'] = [*overrides['mqtt_bridge'],
                                    Parameter('send_text', value=True)]


def _trailing(recorder, args: argparse.Namespace) -> bool:
    """The recorder still waits for annotated frames or text of frames it has tracks of."""
    return (not args.no_video and recorder.video_frames < recorder.frames) or \
        (args.ocr and recorder.text_frames < recorder.frames)


def _spin(comp, chains: list[tuple[str, dict]], args: argparse.Namespace, total: int,
          stop: StopSignals) -> float:
    """Spin until every camera is done, a limit is reached or a stop is asked; the seconds."""
    start = time.monotonic()
    last_progress = 0.0
    last = {name: (-1, start) for name, _ in chains}  # frames seen, when they last changed
    while not stop.requested:
        comp.spin_once(timeout_sec=0.05)
        now = time.monotonic()
        finished = 0
        for name, nodes in chains:
            camera, recorder = nodes['camera'], nodes['recorder']
            done = recorder.frames
            if done != last[name][0]:
                last[name] = (done, now)
            if args.max_frames and done >= args.max_frames:
                finished += 1
            elif camera.state == 'finished' and (done >= camera.frames_published or
                                                 now - last[name][1] > 10.0):
                finished += 1  # (frames lost to the gate or errors: do not wait forever)
        if now - last_progress > 0.2:
            done = sum(n['recorder'].frames for _, n in chains)
            _progress(done, total, done / max(1e-6, now - start))
            last_progress = now
        if finished == len(chains) or (args.duration and now - start >= args.duration):
            break
    return time.monotonic() - start


def _inference_plan(args: argparse.Namespace, batched: bool = False) -> str:
    """``inference: <what runs and why>``, tuning first when asked (``--tune``); ``batched``:
    one detector shared by every camera (as inference_node plans a ``batch_group``)."""
    from edge_vision_core.optimize.tune import AUTO_MODEL, TuneConfig, plan_inference, tuned

    def value(arg: object) -> object:
        return arg.value() if isinstance(arg, FieldDefault) else arg

    if args.tune and args.model == 'auto':
        try:
            tuned(TuneConfig(model=AUTO_MODEL), lambda line: print(line, file=sys.stderr))
        except Exception as exc:  # a first-run speed-up: never the reason the job does not run
            print(f'edge-vision run: tuning failed ({type(exc).__name__}: {exc}); running the '
                  f'untuned default', file=sys.stderr)
    plan = plan_inference(str(value(args.model)), str(value(args.backend)),
                          str(value(args.device)), int(value(args.threads)),
                          workers=args.workers)
    shared = '; shared by every camera, their waiting frames batched' if batched else ''
    return f'inference: {plan.reason}{shared}'


def _report(nodes: dict, elapsed: float, latency: bool = True) -> dict:
    """The run's numbers; without ``latency`` (a replayed recording keeps its old stamps) the
    camera-stamp-to-tracks latency is not measured (None)."""
    import numpy as np

    stages = {name: node.stats() for name, node in nodes.items()}
    recorder = nodes['recorder']
    lat = np.array(recorder.latencies_ms if latency and recorder.latencies_ms else [np.nan])
    measured = bool(latency and recorder.latencies_ms)
    return {
        'frames': recorder.frames, 'seconds': elapsed,
        'fps': recorder.frames / max(1e-6, elapsed),
        'end_to_end_latency_ms': {
            'p50': float(np.nanpercentile(lat, 50)) if measured else None,
            'p95': float(np.nanpercentile(lat, 95)) if measured else None},
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
        ('ocr', 'detect ms p50 / p95', _pair(report, 'ocr', 'det')),
        ('ocr', 'recognize ms p50 / p95', _pair(report, 'ocr', 'rec')),
        ('privacy', 'filter ms p50 / p95', _pair(report, 'privacy', 'filter')),
        ('privacy', 'frames filtered / withheld', _counts(report, 'privacy', 'frames_published',
                                                          'frames_withheld')),
        ('overlay', 'draw ms p50', _fmt(report['stages'].get('overlay', {})
                                        .get('draw_ms_p50'))),
        ('pipeline', 'frames / seconds / fps',
         f'{report["frames"]} / {report["seconds"]:.1f} / {report["fps"]:.1f}'),
        ('pipeline', 'camera stamp -> tracks ms p50 / p95',
         f'{_fmt(report["end_to_end_latency_ms"]["p50"])} / '
         f'{_fmt(report["end_to_end_latency_ms"]["p95"])}'
         if report['end_to_end_latency_ms']['p50'] is not None else
         'n/a (a replay keeps the recorded stamps)'),
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
