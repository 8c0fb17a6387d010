"""One benchmark measurement in a fresh process (run by :mod:`.bench`, not by users).

Reads one JSON job from stdin, loads one model file on one backend/device/thread count, and
prints one JSON line to stdout: load time, inference latencies, back-to-back throughput, the
detections on the evaluation images (when asked) and the process's RSS high-water mark. A fresh
process per measurement makes the peak memory that of this model alone, and keeps runtimes
from sharing thread pools or caches between variants.

Timing protocol: ``warmup`` untimed inferences, then ``iterations`` inferences back to back on
the preprocessed evaluation images (cycled); every call is timed with ``perf_counter``.
Latency is the bare runtime call (``Backend.run``); throughput is iterations / total wall time
of that loop; ``detect_ms`` is the full ``Detector.detect`` (pre-processing, inference,
decoding, NMS) on each evaluation image.

Text models (adapters of :mod:`..inference.text`) are timed on their own inputs (detection
inputs, or the line crops the embedded detector finds: ``calibration_tensors``), and their
"detections" are the lines a :class:`..inference.ocr.TextReader` with the model in its slot
reads in each image (boxes = line bounds, class 0, score = recognition score, plus the texts
and polygons for the text agreement); ``detect_ms`` is then the whole ``read``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _status_mb(key: str) -> float | None:
    """A memory line of /proc/self/status ('VmRSS', 'VmHWM') in MB; None off Linux."""
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    """Current resident set size in MB (0 where unknown)."""
    return _status_mb('VmRSS') or 0.0


def _peak_rss_mb() -> float:
    """RSS high-water mark of this process in MB.

    Linux: VmHWM of this process image. Not ``ru_maxrss``: Linux keeps that across
    fork + exec, so a worker started by a large parent would report the parent's peak.
    """
    peak = _status_mb('VmHWM')
    if peak is not None:
        return peak
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == 'darwin' else peak / 1024.0


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job (the fields of :class:`edge_vision_core.optimize.bench.measure.WorkerJob`)."""
    from ...inference.backends import BACKENDS
    from ...inference.detector import Detector, DetectorOptions
    from ...inference.manifest import load_manifest

    BACKENDS[job['backend']].is_installed()  # import the runtime before timing the load
    base_rss = _rss_mb()
    manifest = load_manifest(job['manifest'])
    one = dataclasses.replace(manifest, files=(manifest.files[job['file_index']],))
    with np.load(job['images']) as data:
        images = [data[k] for k in sorted(data.files, key=lambda k: int(k.split('_')[1]))]
    from ...inference.ocr import SLOTS
    if manifest.adapter in SLOTS:
        return _measure_text(job, one, images, base_rss)
    options = DetectorOptions(backend=job['backend'], device=job['device'],
                              threads=job['threads'], verify_checksum=False,
                              score_threshold=job['score_threshold'])
    t0 = time.perf_counter()
    detector = Detector.from_manifest(one, options)
    load_s = time.perf_counter() - t0
    out: dict[str, Any] = {'load_s': load_s, 'base_rss_mb': base_rss,
                           'device': detector.backend.device}
    with detector:
        inputs = [detector.preprocess(image).inputs[0].copy() for image in images]
        out.update(_timed(detector.backend.run, inputs, job))
        if job.get('detect'):
            dets, detect_ms = [], []
            for image in images:
                result = detector.detect(image)
                detect_ms.append(result.timings.total_ms)
                d = result.detections
                dets.append({'boxes': d.boxes.tolist(), 'scores': d.scores.tolist(),
                             'class_ids': d.class_ids.tolist()})
            out.update(detections=dets, detect_ms_p50=float(np.median(detect_ms)))
    out['peak_rss_mb'] = _peak_rss_mb()
    return out


def _timed(run, inputs: list[np.ndarray], job: dict[str, Any]) -> dict[str, Any]:
    for i in range(job['warmup']):
        run([inputs[i % len(inputs)]])
    times = []
    start = time.perf_counter()
    for i in range(job['iterations']):
        t = time.perf_counter()
        run([inputs[i % len(inputs)]])
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    lat = np.asarray(times) * 1e3
    return {'latency_ms': {'p50': float(np.percentile(lat, 50)),
                           'p95': float(np.percentile(lat, 95)),
                           'p99': float(np.percentile(lat, 99)), 'mean': float(lat.mean())},
            'fps': job['iterations'] / wall}


def _measure_text(job: dict[str, Any], manifest, images: list[np.ndarray],
                  base_rss: float) -> dict[str, Any]:
    """A text model: bare inference on its own inputs, and the lines read with it."""
    from ...inference.ocr import SLOTS, TextReader, calibration_tensors

    slot = SLOTS[manifest.adapter]
    inputs = calibration_tensors(manifest, images, limit=64)
    if not inputs:
        raise ValueError('the evaluation images hold no text line to time a text model on')
    t0 = time.perf_counter()
    reader = TextReader.from_manifests({slot: manifest}, backend=job['backend'],
                                       device=job['device'], threads=job['threads'],
                                       verify_checksum=False)
    load_s = time.perf_counter() - t0
    model = {'detector': reader.detector_model, 'recognizer': reader.recognizer_model,
             'classifier': reader.classifier_model}[slot]
    out: dict[str, Any] = {'load_s': load_s, 'base_rss_mb': base_rss,
                           'device': model.backend.device}
    with reader:
        out.update(_timed(model.backend.run, inputs, job))
        if job.get('detect'):
            dets, read_ms = [], []
            for image in images:
                result = reader.read_result(image)
                read_ms.append(result.stats.total_ms)
                lines = result.lines
                dets.append({'boxes': [line.box.tolist() for line in lines],
                             'scores': [line.score for line in lines],
                             'class_ids': [0] * len(lines),
                             'texts': [line.text for line in lines],
                             'polygons': [line.polygon.tolist() for line in lines]})
            out.update(detections=dets, detect_ms_p50=float(np.median(read_ms)))
    out['peak_rss_mb'] = _peak_rss_mb()
    return out


def main() -> int:
    job = json.loads(sys.stdin.read())
    try:
        result = measure(job)
    except Exception as exc:  # reported to the parent as a failed row
        result = {'error': f'{type(exc).__name__}: {str(exc).strip()[:600]}'}
    sys.stdout.write('\n' + json.dumps(result) + '\n')
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
