"""Benchmark measurement: the machine, and one measurement per fresh worker process.

:func:`run_worker` starts :mod:`._worker` with one :class:`WorkerJob` (one model file on one
backend, device and thread count) and parses its one JSON line into a :class:`Measurement`:
load time, latency percentiles of the bare runtime call, throughput, peak RSS and (when asked)
the detections on the evaluation images. :func:`machine_description` says what the numbers were
measured on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...types import Detections

__all__ = ['Latency', 'Measurement', 'WorkerJob', 'faster', 'loadavg', 'machine_description',
           'run_worker']

_FLAGS = ('sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512_vnni', 'avx_vnni',
          'avx512_bf16', 'amx_int8', 'amx_bf16', 'asimd', 'asimddp', 'fphp')


def machine_description() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python and runtime versions, relevant CPU flags, devices."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            key, _, value = line.partition(':')
            key = key.strip()
            if key in ('model name', 'Model', 'Hardware') and cpu in ('', platform.machine(),
                                                                   platform.processor()):
                cpu = value.strip()
            elif key in ('flags', 'Features') and not flags:
                flags = set(value.split())
    except OSError:
        pass
    try:
        ram = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30
    except (ValueError, OSError, AttributeError):
        ram = math.nan
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 1
    versions: dict[str, str] = {'python': platform.python_version(), 'numpy': np.__version__}
    from importlib.metadata import PackageNotFoundError, version
    for dist in ('onnxruntime', 'onnxruntime-gpu', 'openvino', 'ai-edge-litert',
                 'tflite-runtime', 'tensorrt', 'opencv-python-headless', 'opencv-python',
                 'nncf', 'ai-edge-quantizer', 'onnx'):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            continue
    from ...inference.backends import available_backends
    return {
        'cpu': cpu, 'cores': os.cpu_count(), 'usable_cores': affinity,
        'ram_gib': round(ram, 1), 'os': platform.platform(), 'machine': platform.machine(),
        'cpu_flags': sorted(f for f in _FLAGS if f in flags),
        'versions': versions,
        'backends': {k: list(v) for k, v in available_backends().items()},
    }


def loadavg() -> float | None:
    """1-minute load average (other processes competing for the cores), None where unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


@dataclass(frozen=True)
class WorkerJob:
    """One measurement for :mod:`._worker` (sent to it as JSON on stdin).

    Attributes:
        manifest: path of the model's manifest.
        file_index: which of its files.
        backend, device, threads: where and how it runs.
        warmup, iterations: untimed and timed inferences.
        images: path of the ``.npz`` of evaluation images.
        detect: also run ``Detector.detect`` on every image and return the detections.
        score_threshold: the detector's score threshold for those detections.
    """

    manifest: str
    file_index: int
    backend: str
    device: str
    threads: int
    warmup: int
    iterations: int
    images: str
    detect: bool
    score_threshold: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Latency:
    """Milliseconds of the bare runtime call."""

    p50: float
    p95: float
    p99: float
    mean: float

    def as_dict(self) -> dict[str, float]:
        return {'p50': self.p50, 'p95': self.p95, 'p99': self.p99, 'mean': self.mean}


@dataclass(frozen=True)
class Measurement:
    """What one worker measured, or why it failed (``error``; the other fields then default).

    Attributes:
        error: the failure, or None.
        load_s: seconds to create the Detector (load and compile the model).
        base_rss_mb: RSS before loading, MB.
        peak_rss_mb: RSS high-water mark of the worker, MB.
        device: the device the backend resolved.
        latency: percentiles of the bare runtime call.
        fps: iterations per second of the timed loop.
        detections: per evaluation image, every detection above the job's score threshold
            (only when the job asked for them).
        detect_ms_p50: median milliseconds of ``Detector.detect`` (with ``detections``).
        lines: text models: per evaluation image, ``(text, (4, 2) polygon)`` of every line
            read (with ``detections``, whose boxes are the lines' bounds).
    """

    error: str | None = None
    load_s: float = math.nan
    base_rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    device: str = ''
    latency: Latency | None = None
    fps: float = math.nan
    detections: list[Detections] | None = None
    detect_ms_p50: float | None = None
    lines: list[list[tuple[str, np.ndarray]]] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, error: str) -> Measurement:
        return cls(error=error)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        """Parse the worker's JSON line."""
        if 'error' in data:
            return cls.failed(str(data['error']))
        dets = None
        if 'detections' in data:
            dets = [Detections(np.asarray(item['boxes'], np.float32).reshape(-1, 4),
                               np.asarray(item['scores'], np.float32),
                               np.asarray(item['class_ids'], np.int32))
                    for item in data['detections']]
        lines = None
        if dets is not None and all('texts' in item for item in data['detections']):
            lines = [[(t, np.asarray(p, np.float32)) for t, p in
                      zip(item['texts'], item['polygons'], strict=True)]
                     for item in data['detections']]
        lat = data['latency_ms']
        return cls(load_s=float(data['load_s']), base_rss_mb=float(data['base_rss_mb']),
                   peak_rss_mb=float(data['peak_rss_mb']), device=str(data.get('device', '')),
                   latency=Latency(lat['p50'], lat['p95'], lat['p99'], lat['mean']),
                   fps=float(data['fps']), detections=dets,
                   detect_ms_p50=data.get('detect_ms_p50'), lines=lines)

    def detections_above(self, min_score: float) -> list[Detections]:
        """The detections with score >= ``min_score`` (per image)."""
        if self.detections is None:
            return []
        return [d[d.scores >= min_score] for d in self.detections]


def run_worker(job: WorkerJob, timeout_s: float) -> Measurement:
    """Run one job in a fresh Python process (a failed or timed-out run is a failed
    Measurement, never an exception)."""
    cmd = [sys.executable, '-m', 'edge_vision_core.optimize.bench._worker']
    env = dict(os.environ, PYTHONUNBUFFERED='1', TQDM_DISABLE='1')
    try:
        proc = subprocess.run(cmd, input=json.dumps(job.as_dict()), capture_output=True,
                              text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:
        return Measurement.failed(f'timed out after {timeout_s:.0f} s')
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return Measurement.failed(f'worker exited with {proc.returncode}: '
                                  f'{" | ".join(tail)[:600]}')
    return Measurement.from_json(json.loads(lines[-1]))


def faster(kept: Measurement, new: Measurement) -> Measurement:
    """The faster of two measurements of one row; the first one's detections and the higher
    peak RSS carried over."""
    if not new.ok or (kept.ok and new.fps <= kept.fps):
        return kept
    return dataclasses.replace(
        new,
        detections=kept.detections if kept.detections is not None else new.detections,
        lines=kept.lines if kept.lines is not None else new.lines,
        detect_ms_p50=(kept.detect_ms_p50 if kept.detect_ms_p50 is not None
                       else new.detect_ms_p50),
        peak_rss_mb=max(kept.peak_rss_mb, new.peak_rss_mb))
