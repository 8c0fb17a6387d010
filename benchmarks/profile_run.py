"""Profile `edge-vision run` (the composed graph) with py-spy: where each thread's time goes.

Usage::

    .venv/bin/python benchmarks/profile_run.py [--rate 50] [--out /tmp/profile]
        [-- <edge-vision run arguments, e.g. --model nanodet-m-416 --workers 2>]

Starts ``edge-vision run`` in its own process, attaches py-spy (``py-spy record --pid``, not
blocking the process) once frames flow, and prints, per thread (camera capture, each stage's
link worker, the executor), its share of the samples and the functions it spends them in (self
time), then the most expensive call paths overall. The collapsed stacks are written to
``<out>/profile.txt`` (input of flamegraph.pl or https://speedscope.app); ``--svg`` writes a
flame graph instead. Waiting for a lock counts as time in the waiting line (py-spy sees no
difference). ``--gil`` samples only the thread that holds the interpreter lock and says how
much of the time some thread held it.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path


def summarize(path: Path, top: int) -> int:
    per_thread: collections.Counter = collections.Counter()
    self_time: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(' ')
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(';')
        thread = frames[0].split(': ', 1)[-1]
        total += n
        per_thread[thread] += n
        self_time[thread][frames[-1]] += n
        for frame in set(frames[1:]):
            inclusive[frame] += n
    if not total:
        raise SystemExit(f'no samples in {path} (did the run start?)')
    print(f'{total} samples; per thread (share of all samples), then its top functions '
          f'(self time):')
    for thread, n in per_thread.most_common():
        print(f'\n{100 * n / total:5.1f} %  {thread}')
        for frame, m in self_time[thread].most_common(top):
            print(f'          {100 * m / n:5.1f} %  {frame}')
    print('\nmost expensive call paths (inclusive, share of all samples):')
    for frame, n in inclusive.most_common(top * 3):
        print(f'  {100 * n / total:5.1f} %  {frame}')
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rate', type=int, default=50, help='samples per second (default 50)')
    parser.add_argument('--out', default='/tmp/edge_vision_profile', help='output folder')
    parser.add_argument('--svg', action='store_true', help='write a flame graph SVG instead')
    parser.add_argument('--top', type=int, default=8, help='functions listed per thread')
    parser.add_argument('--gil', action='store_true',
                        help="sample only the thread holding Python's GIL (py-spy --gil): "
                             'also prints the share of the time some thread held it (near '
                             '100 %% means the interpreter lock, not the cores, bounds the '
                             'graph)')
    parser.add_argument('run_args', nargs=argparse.REMAINDER,
                        help='arguments of edge-vision run (after --)')
    args = parser.parse_args()
    spy = shutil.which('py-spy') or str(Path(sys.executable).with_name('py-spy'))
    if not Path(spy).is_file():
        raise SystemExit('py-spy is not installed (tools/requirements/dev.txt pins it)')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_args = [a for a in args.run_args if a != '--']
    log = out / 'run.log'
    with log.open('w') as stream:
        run = subprocess.Popen([sys.executable, '-m', 'edge_vision.cli', 'run', '--out',
                                str(out / 'run'), *run_args], stdout=stream,
                               stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not re.search(r'^[1-9]\d*/\S+ frames', log.read_text(), re.M) and \
                run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # attach once frames flow (start-up is not the hot path)
        target = out / ('profile.svg' if args.svg else 'profile.txt')
        started = time.monotonic()
        spied = subprocess.run([spy, 'record', '--pid', str(run.pid), '--rate', str(args.rate),
                                '--nonblocking', '--threads', '--format',
                                'flamegraph' if args.svg else 'raw', '--output', str(target),
                                *(['--gil'] if args.gil else [])],
                               capture_output=True, text=True)
        seconds = time.monotonic() - started
        run.wait()
    report = [line for line in log.read_text().splitlines() if 'fps' in line or 'ms p50' in line]
    print('\n'.join(report[-10:]))
    if spied.returncode != 0 or not target.is_file():
        raise SystemExit(f'py-spy failed: {spied.stderr.strip()[-500:]}')
    print(f'\nprofile: {target}\n')
    if not args.svg:
        samples = summarize(target, args.top)
        if args.gil:
            print(f'\nthe GIL was held in {samples} samples of about {args.rate * seconds:.0f} '
                  f'({100 * samples / (args.rate * seconds):.0f} % of {seconds:.1f} s)')


if __name__ == '__main__':
    main()
