"""Hardware evaluation: every model variant on every installed backend and device, measured.

:func:`run_benchmark` takes models (registered names, manifest YAMLs, or folders of manifests
such as the output of ``edge-vision optimize``) and measures every combination of

    model file (format x precision x input size) x installed backend that reads the format
    x device of that backend here

where devices are the backend's own (ONNX Runtime ``cpu``/``cuda``/``tensorrt``, OpenVINO
``CPU``/``GPU``/``NPU``, LiteRT ``cpu`` and ``edgetpu`` for INT8 TFLite files, TensorRT
``cuda`` for ``.engine`` files); what is not installed or not present is skipped, and the
report lists the backends and devices it found. OpenVINO's ``AUTO`` is left out (it picks one
of the listed devices).

Each row is measured in fresh processes (:mod:`._worker`): once with ``threads`` runtime
threads (default: all cores) for latency p50/p95/p99, throughput, load time, peak RSS and the
detections on the evaluation images, and once with 1 thread for the single-thread throughput.

**Agreement** with the FP32 reference (the ``reference`` model's FP32 ONNX file on ONNX Runtime
CPU, at its own input size): the reference's detections at its manifest score threshold are the
ground truth; the row's detections at ``eval_score_threshold`` (low, so the whole ranking
counts) give mAP@0.5 (:func:`edge_vision_core.eval.detection.detection_agreement`: per class,
all-point interpolated AP, mean over the classes present in the reference), and at the row's
own manifest threshold the mean IoU of matched boxes, precision and recall.

Text models (``db_text``, ``ctc_text``, ``text_direction`` manifests such as ``ppocrv4-det``
and the variants ``edge-vision optimize`` makes of them) are timed on their own inputs (see
:mod:`._worker`); their agreement is that of the lines a TextReader reads with the variant in
its slot against the reference's: mAP@0.5 of the line boxes, and word and character agreement
of the texts (:mod:`edge_vision_core.eval.ocr`). Their default evaluation images are the first
16 rendered text scenes of the ``tune`` split.

Outputs in ``out_dir``: ``bench.json`` (machine description, SHA-256 of the evaluation images,
settings, rows, best variant per backend, the INT8 target check), ``bench.md`` (the same as
tables) and ``bench.png`` (latency p50 against agreement mAP, one marker per backend).

The parts: :mod:`.plan` (settings, which file runs where: ``PlannedRow``), :mod:`.measure`
(the machine, one worker process per measurement: ``Measurement``), :mod:`.report` (scoring
and the files: ``ReportRow``, ``BenchReport``); :func:`run_benchmark` runs them in turn.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...config import config_to_mapping
from ...errors import ModelError
from ...types import Detections
from ..images import ImageSet, default_eval_images, load_image_set
from .measure import (
    Latency,
    Measurement,
    WorkerJob,
    faster,
    loadavg,
    machine_description,
    run_worker,
)
from .plan import BenchConfig, Plan, PlannedRow, expand_models, plan
from .report import (
    BenchReport,
    BestPick,
    MeasuredRow,
    ReferenceInfo,
    ReportRow,
    TargetCheck,
    build_report,
    row_agreement,
    text_agreement,
    write_reports,
)

__all__ = ['BenchConfig', 'BenchReport', 'BestPick', 'Latency', 'MeasuredRow', 'Measurement',
           'Plan', 'PlannedRow', 'ReportRow', 'TargetCheck', 'machine_description',
           'run_benchmark', 'write_reports']

_LOG = logging.getLogger(__name__)


def run_benchmark(models: Sequence[str | Path], out_dir: str | Path,
                  config: BenchConfig | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every variant x backend x device and write the reports (see the module doc).

    Args:
        models: registered names, manifest paths, or folders of manifests.
        out_dir: folder for ``bench.json``, ``bench.md``, ``bench.png`` (created).
        config: what to measure and how.
        progress: called with one line per measurement (default: logging at INFO).

    Returns:
        The report (what ``bench.json`` holds).

    Raises:
        ConfigError: bad settings, unknown backend, no model, an unwritable folder.
        ModelError: a model that cannot be resolved, or a reference without an FP32 ONNX file.
        SourceError: unreadable evaluation images.
    """
    from ...inference.manifest import load_manifest, resolve_model
    from ..recipes import check_writable

    config = config or BenchConfig()
    say = progress or (lambda line: _LOG.info('%s', line))
    out = Path(out_dir).expanduser()
    check_writable(out)
    manifests = expand_models(models)
    reference_path = (Path(resolve_model(config.reference).source).resolve()
                      if config.reference else manifests[0])
    reference = load_manifest(reference_path)
    ref_index = next((i for i, f in enumerate(reference.files)
                      if f.format == 'onnx' and f.precision == 'fp32'), None)
    if ref_index is None:
        raise ModelError(f'the reference {reference.name} ({reference_path}) has no FP32 ONNX '
                         f'file; pass --reference with the original model')
    from ...inference.ocr import SLOTS
    if config.images:
        images: ImageSet = load_image_set(config.images, config.image_count)
    elif reference.adapter in SLOTS:  # text models: rendered text scenes
        from ...eval.text_scenes import scene_image_set
        images = scene_image_set('tune', min(16, config.image_count))
    else:
        images = default_eval_images()
    planned = plan(manifests, config)
    rows = [MeasuredRow(p) for p in planned.rows]
    threads = config.threads or os.cpu_count() or 1
    load_start = loadavg()
    say(f'{len(rows)} measurements ({len(manifests)} manifests), {len(images)} evaluation '
        f'images (sha256 {images.sha256[:12]}), {threads} threads')
    with tempfile.TemporaryDirectory(prefix='edge-vision-bench-') as tmp:
        npz = Path(tmp) / 'images.npz'
        np.savez(npz, **{f'image_{i}': im for i, im in enumerate(images.images)})

        def job(manifest: str, index: int, backend: str, device: str, n_threads: int,
                detect: bool) -> WorkerJob:
            return WorkerJob(manifest, index, backend, device, n_threads, config.warmup,
                             config.iterations, str(npz), detect, config.eval_score_threshold)

        say('reference: FP32 ONNX on onnxruntime cpu')
        ref_result = run_worker(job(str(reference_path), ref_index, 'onnxruntime', 'cpu',
                                    threads, True), config.timeout_s)
        if not ref_result.ok:
            raise ModelError(f'the reference {reference.name} failed on onnxruntime cpu: '
                             f'{ref_result.error}')
        truth = ref_result.detections_above(reference.score_threshold)
        for round_index in range(config.rounds):
            _measure_round(rows, round_index, job, truth, threads, config, say,
                           ref_result.lines)
    report = build_report(
        rows, truth,
        ReferenceInfo(reference.name, str(reference_path), reference.input_size,
                      reference.score_threshold, int(sum(len(t) for t in truth)),
                      ref_result.latency),
        machine_description(), images.describe(), config, config_to_mapping(config),
        threads, planned.notes)
    report.load_average = [load_start, loadavg()]
    write_reports(report, out)
    return report.as_dict()


def _measure_round(rows: list[MeasuredRow], round_index: int,
                   job: Callable[..., WorkerJob], truth: list[Detections], threads: int,
                   config: BenchConfig, say: Callable[[str], None],
                   text_truth: list | None = None) -> None:
    """Measure every row once (round 1 also collects the detections and the agreement); a
    later round keeps each row's faster measurement."""
    first = round_index == 0
    for k, row in enumerate(rows, 1):
        p = row.planned
        if not first and not row.result.ok:
            continue
        result = run_worker(job(p.manifest, p.file_index, p.backend, p.device, threads, first),
                            config.timeout_s)
        row.result = result if first else faster(row.result, result)
        if first:
            row.agreement = row_agreement(row, truth, config)
            row.text_agreement = text_agreement(row, text_truth)
        if config.single_thread and row.result.ok and threads != 1:
            single = run_worker(job(p.manifest, p.file_index, p.backend, p.device, 1, False),
                                config.timeout_s)
            row.single = single if first or row.single is None else faster(row.single, single)
        say(('' if config.rounds == 1 else f'round {round_index + 1}/{config.rounds} ')
            + _progress_line(k, len(rows), row))


def _progress_line(k: int, n: int, row: MeasuredRow) -> str:
    p, r = row.planned, row.result
    head = f'[{k}/{n}] {p.variant} ({p.file}) on {p.backend}:{p.device}'
    if not r.ok:
        return f'{head}: FAILED {r.error[:200]}'
    map50 = row.agreement.map50 if row.agreement is not None else float('nan')
    return f'{head}: p50 {r.latency.p50:.2f} ms, {r.fps:.1f} fps, mAP@0.5 {map50:.3f}'
