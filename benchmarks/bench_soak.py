"""Soak: the composed pipeline on several cameras for minutes; memory, rate, queues and drops.

Usage::

    .venv/bin/python benchmarks/bench_soak.py [--minutes 10] [--cameras 4] [--source CLIP]
        [--threads 1] [--interval 10]

Every camera loops the bundled street clip (or ``--source``) at its own frame rate through its
own chain camera -> preprocess -> inference -> tracker -> overlay -> recorder (namespaces
``/camera0``...), all composed in this process with newest-frame links, the way a robot runs it
for weeks. With four cameras at 30 fps each on a small CPU the detector cannot keep up, so
frames are dropped: the point is that memory stays flat, nothing queues up and every dropped
frame is counted somewhere.

Every ``--interval`` seconds it prints the resident memory (RSS), the frames per second at the
recorders over the last interval, and the drops counted so far. At the end:

- RSS at 1 minute and at the end, and the growth between them (goal: < 5 %);
- queue depths: every in-process link's slot, and every list/dict/set/unbounded deque a node
  holds (with those of the objects it owns), at 1 minute and at the end: a container that
  keeps growing is reported (goal: none);
- the frame accounting per camera: frames read = frames recorded + frames dropped (by the
  links, at the quality gate, by processing errors) + frames in flight (goal: nothing
  unaccounted beyond the few in flight).
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import tempfile
import time

#: the main path of a chain: the links a frame crosses from the camera to the recorder
_MAIN_PATH = (('preprocess', 'image_raw'), ('inference', 'image'), ('tracker', 'detections'),
              ('recorder', 'tracks'))


def _rss_mb() -> float:
    import psutil
    return psutil.Process(os.getpid()).memory_info().rss / 1e6


def _containers(obj: object, prefix: str, depth: int = 1) -> dict[str, int]:
    """Lengths of the lists, dicts, deques and sets ``obj`` holds (and those of the plain
    objects it owns, ``depth`` levels down), by attribute path."""
    out: dict[str, int] = {}
    for name, value in list(vars(obj).items()):
        if isinstance(value, collections.deque) and value.maxlen is not None:
            continue  # bounded by construction
        if isinstance(value, (list, dict, set, collections.deque)):
            out[f'{prefix}.{name}'] = len(value)
        elif depth and hasattr(value, '__dict__') and type(value).__module__.startswith(
                ('edge_vision', 'edge_vision_core')):
            out.update(_containers(value, f'{prefix}.{name}', depth - 1))
    return out


def _input(node, topic: str):
    return next((s for s in node.inputs if s.topic == topic), None)


def _snapshot(chains) -> dict[str, object]:
    depths: dict[str, int] = {}
    counts = {}
    for name, nodes in chains:
        for stage, node in nodes.items():
            depths.update(_containers(node, f'{name}.{stage}'))
            for spec in node.inputs:
                if spec.link is not None:
                    depths[f'{name}.{stage}<-{spec.topic} slot'] = int(
                        spec.link._item is not None)
        links = {topic: _input(nodes[stage], topic) for stage, topic in _MAIN_PATH}
        link_drops = sum(s.link.dropped for s in links.values() if s and s.link)
        pending = sum(int(s.link._item is not None) for s in links.values() if s and s.link)
        pre = nodes['preprocess']
        gate = pre._pre.stats.dropped if getattr(pre, '_pre', None) is not None else 0
        errors = sum(n.processing_errors + n.bad_messages for n in nodes.values())
        counts[name] = {'read': nodes['camera'].frames_published,
                        'recorded': nodes['recorder'].frames, 'link_drops': link_drops,
                        'gate_drops': gate, 'errors': errors, 'in_links': pending}
    return {'depths': depths, 'counts': counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--cameras', type=int, default=4)
    parser.add_argument('--source', default='', help='video to loop (default: bundled clip)')
    parser.add_argument('--threads', type=int, default=1, help='inference threads per camera')
    parser.add_argument('--interval', type=float, default=10.0, help='seconds between lines')
    args = parser.parse_args()

    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from edge_vision.compose import Composition
    from edge_vision.dds import apply_transport_defaults
    from edge_vision.pipeline import pipeline_factories
    from edge_vision.stages import select_stages

    source = args.source
    if not source:
        from edge_vision_models import sample_path
        source = str(sample_path())
    stages = select_stages(recorder=True)
    out = tempfile.mkdtemp(prefix='edge_vision_soak_')
    apply_transport_defaults()
    context = Context()
    rclpy.init(context=context, args=[])
    factories: list[functools.partial] = []
    for i in range(args.cameras):
        factories += pipeline_factories(stages, context=context, namespace=f'/camera{i}',
                                        parameter_overrides={
            'camera': [Parameter('source', value=source), Parameter('loop', value=True)],
            'inference': [Parameter('threads', value=args.threads)],
            'recorder': [Parameter('output_dir', value=f'{out}/camera{i}'),
                         Parameter('write_video', value=False)]})
    comp = Composition(factories, context=context)
    try:
        errors = comp.start()
        if errors:
            raise SystemExit('; '.join(errors))
        n = len(stages)
        chains = [(f'camera{i}', dict(zip(stages, comp.nodes[i * n:(i + 1) * n], strict=True)))
                  for i in range(args.cameras)]
        print(f'soak: {args.cameras} cameras looping {source} for {args.minutes:g} min, '
              f'{args.threads} inference thread(s) each, os.cpu_count()={os.cpu_count()}')
        print(f'{"t (s)":>7} {"RSS MB":>8} {"fps":>7} {"read":>7} {"recorded":>9} '
              f'{"link drops":>10} {"gate":>6} {"errors":>6}')
        start = time.monotonic()
        end = start + args.minutes * 60.0
        next_line = start + args.interval
        last_recorded, last_t = 0, start
        at_minute: dict[str, object] | None = None
        rss_minute = None
        fps_series = []
        while time.monotonic() < end:
            comp.spin_once(timeout_sec=0.05)
            now = time.monotonic()
            if at_minute is None and now - start >= 60.0:
                at_minute, rss_minute = _snapshot(chains), _rss_mb()
            if now >= next_line:
                snap = _snapshot(chains)
                total = {k: sum(c[k] for c in snap['counts'].values())
                         for k in next(iter(snap['counts'].values()))}
                fps = (total['recorded'] - last_recorded) / (now - last_t)
                fps_series.append(fps)
                last_recorded, last_t = total['recorded'], now
                print(f'{now - start:7.0f} {_rss_mb():8.1f} {fps:7.1f} {total["read"]:7d} '
                      f'{total["recorded"]:9d} {total["link_drops"]:10d} '
                      f'{total["gate_drops"]:6d} {total["errors"]:6d}', flush=True)
                next_line += args.interval
        final, rss_end = _snapshot(chains), _rss_mb()
    finally:
        comp.shutdown()
        rclpy.try_shutdown(context=context)
    print()
    if rss_minute is not None:
        print(f'RSS at 1 min {rss_minute:.1f} MB, at {args.minutes:g} min {rss_end:.1f} MB: '
              f'growth {100.0 * (rss_end - rss_minute) / rss_minute:+.2f} % (goal < 5 %)')
    if fps_series:
        half = len(fps_series) // 2
        first, second = fps_series[:half] or fps_series, fps_series[half:]
        print(f'fps at the recorders (all cameras): first half {sum(first) / len(first):.1f}, '
              f'second half {sum(second) / len(second):.1f}, min {min(fps_series):.1f}, '
              f'max {max(fps_series):.1f}')
    if at_minute is not None:
        grew = {k: (at_minute['depths'].get(k, 0), v) for k, v in final['depths'].items()
                if v > at_minute['depths'].get(k, 0) + 2}
        deepest = max(final['depths'].items(), key=lambda kv: kv[1])
        print(f'queues/containers watched: {len(final["depths"])}; deepest at the end: '
              f'{deepest[0]} = {deepest[1]}; grown since 1 min: '
              + (', '.join(f'{k} {a} -> {b}' for k, (a, b) in grew.items()) or 'none'))
    print(f'{"camera":<8} {"read":>7} {"recorded":>9} {"link drops":>10} {"gate":>6} '
          f'{"errors":>6} {"in slots":>8} {"in flight":>9}')
    for name, c in final['counts'].items():
        in_flight = c['read'] - c['recorded'] - c['link_drops'] - c['gate_drops'] - c['errors']
        print(f'{name:<8} {c["read"]:7d} {c["recorded"]:9d} {c["link_drops"]:10d} '
              f'{c["gate_drops"]:6d} {c["errors"]:6d} {c["in_links"]:8d} {in_flight:9d}')
    print(f'(in flight: read, but neither recorded nor dropped when the run stopped: in a link '
          f'slot (in slots) or inside a stage, at most one per stage and slot; outputs in {out})')


if __name__ == '__main__':
    main()
