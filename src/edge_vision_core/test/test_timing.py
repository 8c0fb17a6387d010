"""RateMeter / Pacer / StageTimer with explicit clocks (no sleeping)."""

from __future__ import annotations

import pytest

from edge_vision_core.timing import Pacer, RateMeter, StageTimer


def test_rate_meter_counts_events_in_the_window():
    meter = RateMeter(window_s=2.0)
    for i in range(21):
        meter.tick(now=i * 0.1)
    assert meter.rate(now=2.0) == pytest.approx(10.0)
    assert meter.rate(now=10.0) == 0.0
    assert meter.count == 21


def test_pacer_schedule_does_not_drift_or_burst():
    pacer = Pacer(10.0)
    assert pacer.next_delay(now=0.0) == 0.0
    assert pacer.next_delay(now=0.05) == pytest.approx(0.05)
    assert pacer.next_delay(now=0.2) == pytest.approx(0.0)  # slightly late: no wait
    assert pacer.next_delay(now=1.0) == 0.0  # far behind: restart from now
    assert pacer.next_delay(now=1.0) == pytest.approx(0.1)
    assert Pacer(0).next_delay() == 0.0


def test_stage_timer_summary():
    timer = StageTimer()
    for ms in (1.0, 2.0, 3.0):
        timer.add('infer', ms)
    with timer.stage('pre'):
        pass
    summary = timer.summary()
    assert summary['infer']['p50'] == 2.0 and summary['infer']['last'] == 3.0
    assert summary['pre']['n'] == 1
    values = timer.percentile_values()
    assert values['infer_ms_p50'] == 2.0 and values['infer_ms_p95'] == pytest.approx(2.9)
    assert set(values) == {'infer_ms_p50', 'infer_ms_p95', 'pre_ms_p50', 'pre_ms_p95'}
