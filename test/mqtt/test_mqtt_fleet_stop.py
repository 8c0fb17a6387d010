"""``edge-vision fleet`` stops cleanly on SIGINT and SIGTERM, also when it was started with
SIGINT ignored (what a non-interactive shell does to a job it starts in the background, and
where Python installs no KeyboardInterrupt handler): it disconnects, prints its summary and
exits 0. No broker is needed: the tool keeps reconnecting to a closed port meanwhile."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip('edge_vision.cli')


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize('stop_signal, ignored_at_start', [
    (signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=['SIGINT', 'SIGINT-ignored-at-start', 'SIGTERM'])
def test_the_fleet_tool_stops_cleanly_on_a_signal(tmp_path, stop_signal, ignored_at_start):
    events = tmp_path / 'events.jsonl'
    fleet = subprocess.Popen(
        [sys.executable, '-m', 'edge_vision.cli', 'fleet', '--broker',
         f'mqtt://127.0.0.1:{_closed_port()}', '--events-out', str(events), '--no-table',
         '--client-id', 'test-fleet-stop'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=_ignore_sigint if ignored_at_start else None)
    try:
        deadline = time.monotonic() + 60
        # the tool opens its events file once its signal handlers are in place
        while not events.exists() and time.monotonic() < deadline:
            assert fleet.poll() is None, fleet.communicate()[0]
            time.sleep(0.1)
        time.sleep(0.5)  # in its wait loop, reconnecting (a signal before that works too)
        fleet.send_signal(stop_signal)
        out, _ = fleet.communicate(timeout=30)
    finally:
        if fleet.poll() is None:
            fleet.kill()
            fleet.communicate()
    assert fleet.returncode == 0, out
    assert f'{signal.Signals(stop_signal).name}: disconnecting' in out
