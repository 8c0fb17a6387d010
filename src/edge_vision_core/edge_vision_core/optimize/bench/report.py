"""Benchmark scoring and reports: agreement, speed-ups, the best variant per backend, the INT8
target, and ``bench.json`` / ``bench.md`` / ``bench.png``.

Every measured row becomes a :class:`ReportRow`; :class:`BenchReport` holds the rows with the
machine, image set, reference and settings, and :meth:`BenchReport.as_dict` is exactly what
``bench.json`` holds (schema ``edge_vision.bench/1``).
"""

from __future__ import annotations

import datetime
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...eval.detection import AgreementResult, detection_agreement
from ...types import Detections
from .measure import Latency, Measurement
from .plan import BenchConfig, PlannedRow

__all__ = ['BenchReport', 'BestPick', 'MeasuredRow', 'ReferenceInfo', 'ReportRow',
           'TargetCheck', 'build_report', 'row_agreement', 'text_agreement', 'write_reports']

_LOG = logging.getLogger(__name__)

_TARGET_SPEEDUP = 1.5


@dataclass
class MeasuredRow:
    """A planned row and what was measured for it (filled in by the measurement rounds).

    Attributes:
        planned: what was measured.
        result: the N-thread measurement (the fastest round).
        single: the 1-thread measurement, None when not made.
        agreement: agreement with the reference, from round 1's detections; None when the
            row failed.
    """

    planned: PlannedRow
    result: Measurement = field(default_factory=lambda: Measurement.failed('not measured'))
    single: Measurement | None = None
    agreement: AgreementResult | None = None
    text_agreement: dict[str, float] | None = None


@dataclass
class ReportRow:
    """One row of the report: what was measured (``planned``) and what came out, scored."""

    planned: PlannedRow
    threads: int
    error: str | None = None
    latency: Latency | None = None
    fps: float = math.nan
    fps_1t: float | None = None
    latency_1t_p50_ms: float | None = None
    detect_ms_p50: float | None = None
    load_s: float = math.nan
    peak_rss_mb: float = 0.0
    base_rss_mb: float = 0.0
    map50: float | None = None
    mean_iou: float | None = None
    agreement: dict[str, Any] = field(default_factory=dict)
    error_1t: str | None = None
    fp32_baseline: str | None = None
    speedup: float | None = None
    speedup_1t: float | None = None
    map50_same_size: float | None = None
    mean_iou_same_size: float | None = None
    word_agreement: float | None = None
    char_agreement: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        p = self.planned
        item: dict[str, Any] = {
            'variant': p.variant, 'manifest': p.manifest, 'recipe': p.recipe, 'file': p.file,
            'format': p.format, 'precision': p.precision, 'input_size': list(p.input_size),
            'backend': p.backend, 'device': p.device, 'model_bytes': p.model_bytes,
            'threads': self.threads,
        }
        if not self.ok:
            item.update(status='failed', error=self.error)
            return item
        item.update(
            status='ok', latency_ms=self.latency.as_dict(), fps=self.fps, fps_1t=self.fps_1t,
            latency_1t_p50_ms=self.latency_1t_p50_ms, detect_ms_p50=self.detect_ms_p50,
            load_s=self.load_s, peak_rss_mb=self.peak_rss_mb, base_rss_mb=self.base_rss_mb,
            map50=self.map50, mean_iou=self.mean_iou, agreement=self.agreement)
        if self.error_1t:
            item['error_1t'] = self.error_1t
        if self.fp32_baseline is not None:
            item['fp32_baseline'] = self.fp32_baseline
            item['speedup'] = self.speedup
            if self.speedup_1t is not None:
                item['speedup_1t'] = self.speedup_1t
        if self.map50_same_size is not None:
            item['map50_same_size'] = self.map50_same_size
            item['mean_iou_same_size'] = self.mean_iou_same_size
        if self.word_agreement is not None:
            item['word_agreement'] = self.word_agreement
            item['char_agreement'] = self.char_agreement
        return item

    @classmethod
    def from_measured(cls, row: MeasuredRow, threads: int) -> ReportRow:
        r = row.result
        out = cls(row.planned, threads)
        if not r.ok:
            out.error = r.error
            return out
        single = row.single if row.single is not None and row.single.ok else None
        agree = row.agreement.as_dict() if row.agreement is not None else {}
        out.latency, out.fps = r.latency, r.fps
        out.fps_1t = r.fps if threads == 1 else (single.fps if single else None)
        out.latency_1t_p50_ms = (r.latency.p50 if threads == 1 else
                                 single.latency.p50 if single else None)
        out.detect_ms_p50, out.load_s = r.detect_ms_p50, r.load_s
        out.peak_rss_mb, out.base_rss_mb = r.peak_rss_mb, r.base_rss_mb
        out.map50, out.mean_iou, out.agreement = agree.get('map50'), agree.get('mean_iou'), agree
        if row.single is not None and not row.single.ok:
            out.error_1t = row.single.error
        if row.text_agreement is not None:
            out.word_agreement = row.text_agreement['word_agreement']
            out.char_agreement = row.text_agreement['char_agreement']
        return out


@dataclass(frozen=True)
class BestPick:
    """The variant named best of one backend."""

    variant: str
    file: str
    device: str
    precision: str
    input_size: tuple[int, int]
    ranked_by: str
    meets_agreement: bool
    tradeoff: str

    def as_dict(self) -> dict[str, Any]:
        return {'variant': self.variant, 'file': self.file, 'device': self.device,
                'precision': self.precision, 'input_size': list(self.input_size),
                'ranked_by': self.ranked_by, 'meets_agreement': self.meets_agreement,
                'tradeoff': self.tradeoff}


@dataclass(frozen=True)
class TargetCheck:
    """One INT8 ONNX Runtime CPU row checked against the target."""

    variant: str
    input_size: tuple[int, int]
    speedup: float
    speedup_1t: float | None
    map50: float | None
    map50_same_size: float | None
    met: bool

    def as_dict(self) -> dict[str, Any]:
        return {'variant': self.variant, 'input_size': list(self.input_size),
                'speedup': self.speedup, 'speedup_1t': self.speedup_1t, 'map50': self.map50,
                'map50_same_size': self.map50_same_size, 'met': self.met}


@dataclass(frozen=True)
class ReferenceInfo:
    """The agreement reference: the FP32 ONNX model on ONNX Runtime CPU."""

    name: str
    manifest: str
    input_size: tuple[int, int]
    score_threshold: float
    boxes: int
    latency: Latency

    def as_dict(self) -> dict[str, Any]:
        return {'name': self.name, 'manifest': self.manifest, 'backend': 'onnxruntime',
                'device': 'cpu', 'precision': 'fp32', 'input_size': list(self.input_size),
                'score_threshold': self.score_threshold, 'boxes': self.boxes,
                'latency_ms': self.latency.as_dict()}


@dataclass
class BenchReport:
    """Everything one benchmark run found (``as_dict()`` is ``bench.json``)."""

    created: str
    machine: dict[str, Any]
    input_set: dict[str, Any]
    reference: ReferenceInfo
    settings: dict[str, Any]
    threads: int
    rows: list[ReportRow]
    notes: list[str]
    best_per_backend: dict[str, BestPick]
    required_speedup: float
    required_map50: float
    target_rows: list[TargetCheck]
    load_average: list[float | None] = field(default_factory=list)

    @property
    def target_met(self) -> bool | None:
        """Whether some INT8 row meets the target; None without INT8 rows."""
        return any(c.met for c in self.target_rows) if self.target_rows else None

    def as_dict(self) -> dict[str, Any]:
        return {
            'schema': 'edge_vision.bench/1',
            'created': self.created,
            'machine': self.machine,
            'input_set': self.input_set,
            'reference': self.reference.as_dict(),
            'settings': self.settings,
            'threads': self.threads,
            'rows': [r.as_dict() for r in self.rows],
            'notes': self.notes,
            'best_per_backend': {k: v.as_dict() for k, v in self.best_per_backend.items()},
            'targets': {'int8_onnxruntime_cpu': {
                'required_speedup': self.required_speedup,
                'required_map50': self.required_map50,
                'rows': [c.as_dict() for c in self.target_rows],
                'met': self.target_met}},
            'load_average': self.load_average,
        }


# -- scoring ----------------------------------------------------------------------------------

def row_agreement(row: MeasuredRow, truth: list[Detections], config: BenchConfig
                  ) -> AgreementResult | None:
    """Agreement of a row's round-1 detections with the reference's (None without them)."""
    if row.result.detections is None:
        return None
    return detection_agreement(truth, row.result.detections, config.iou_threshold,
                               row.planned.score_threshold)


def text_agreement(row: MeasuredRow, reference: list[list[tuple[str, np.ndarray]]] | None
                   ) -> dict[str, float] | None:
    """Text models: word and character agreement of a row's lines with the reference's lines
    (:mod:`edge_vision_core.eval.ocr`, the reference as the ground truth); None otherwise."""
    if reference is None or row.result.lines is None:
        return None
    from ...eval.ocr import score_image, sum_scores

    total = sum_scores([score_image(ref, got) for ref, got in
                        zip(reference, row.result.lines, strict=True)])
    return {'word_agreement': total.word_accuracy, 'char_agreement': total.char_accuracy}


def _ok_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def build_report(rows: list[MeasuredRow], truth: list[Detections], reference: ReferenceInfo,
                 machine: dict[str, Any], input_set: dict[str, Any], config: BenchConfig,
                 settings: dict[str, Any], threads: int, notes: list[str]) -> BenchReport:
    """Score the measured rows (speed-ups, same-size agreement, best per backend, target)."""
    out_rows = [ReportRow.from_measured(row, threads) for row in rows]
    _add_speedups(out_rows)
    _add_same_size_agreement(rows, out_rows, config)
    return BenchReport(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        machine=machine, input_set=input_set, reference=reference, settings=settings,
        threads=threads, rows=out_rows, notes=notes,
        best_per_backend=_best(out_rows, config.min_agreement, config.rank_by),
        required_speedup=_TARGET_SPEEDUP, required_map50=config.min_agreement,
        target_rows=_targets(out_rows, config.min_agreement))


def _add_speedups(rows: list[ReportRow]) -> None:
    """speedup = fps / fps of the FP32 row of the same backend, device and input size."""
    base: dict[tuple[str, str, tuple[int, int]], tuple[int, ReportRow]] = {}
    for row in rows:
        if not row.ok or row.planned.precision != 'fp32' or row.planned.recipe == 'prune':
            continue
        key = (row.planned.backend, row.planned.device, row.planned.input_size)
        rank = {'onnx': 0, 'openvino': 1, 'tflite': 2}.get(row.planned.format, 3)
        if key not in base or rank < base[key][0]:
            base[key] = (rank, row)
    for row in rows:
        if not row.ok:
            continue
        ref = base.get((row.planned.backend, row.planned.device, row.planned.input_size))
        if ref is None:
            continue
        ref_row = ref[1]
        row.fp32_baseline = ref_row.planned.variant + ' ' + ref_row.planned.file
        row.speedup = row.fps / ref_row.fps
        if row.fps_1t and ref_row.fps_1t:
            row.speedup_1t = row.fps_1t / ref_row.fps_1t


def _add_same_size_agreement(rows: list[MeasuredRow], out_rows: list[ReportRow],
                             config: BenchConfig) -> None:
    """map50_same_size: agreement with the FP32 ONNX model of the same input size on ONNX
    Runtime CPU (isolates the precision's cost from the input size's)."""
    truths: dict[tuple[int, int], list[Detections]] = {}
    for row, item in zip(rows, out_rows, strict=True):
        p = row.planned
        if item.ok and p.backend == 'onnxruntime' and p.device == 'cpu' \
                and p.format == 'onnx' and p.precision == 'fp32' \
                and p.recipe in ('source', 'onnx-fp32') and p.input_size not in truths:
            truths[p.input_size] = row.result.detections_above(p.score_threshold)
    for row, item in zip(rows, out_rows, strict=True):
        truth = truths.get(row.planned.input_size)
        if not item.ok or truth is None:
            continue
        agree = detection_agreement(truth, row.result.detections or [], config.iou_threshold,
                                    row.planned.score_threshold)
        item.map50_same_size = agree.map50
        item.mean_iou_same_size = agree.mean_iou


def _best(rows: list[ReportRow], min_agreement: float, rank_by: str = 'fps'
          ) -> dict[str, BestPick]:
    """Per backend: the highest ``rank_by`` throughput among rows with agreement mAP@0.5 >=
    ``min_agreement`` (else the most accurate row)."""
    best: dict[str, BestPick] = {}
    ratio = 'speedup' if rank_by == 'fps' else 'speedup_1t'
    for backend in dict.fromkeys(r.planned.backend for r in rows):
        ok = [r for r in rows if r.planned.backend == backend and r.ok]
        if not ok:
            continue
        good = [r for r in ok if _ok_number(r.map50) and r.map50 >= min_agreement]
        pick = max(good, key=lambda r: getattr(r, rank_by) or 0.0) if good else max(
            ok, key=lambda r: r.map50 if _ok_number(r.map50) else -1.0)
        threads = '1 thread' if rank_by == 'fps_1t' else f'{pick.threads} threads'
        speed = (f'{getattr(pick, ratio):.2f}x the FP32 throughput'
                 if _ok_number(getattr(pick, ratio)) else 'no FP32 row to compare')
        map50 = pick.map50 if pick.map50 is not None else math.nan
        p = pick.planned
        tradeoff = (f'{getattr(pick, rank_by) or math.nan:.1f} fps with {threads} ({speed}), '
                    f'p50 {pick.latency.p50:.2f} ms, agreement mAP@0.5 {map50:.3f}, mean IoU '
                    f'{pick.mean_iou or math.nan:.3f}, {p.model_bytes / 1e6:.1f} MB, peak '
                    f'RSS {pick.peak_rss_mb:.0f} MB')
        if not good:
            tradeoff += (f'; no variant reaches mAP@0.5 >= {min_agreement}, the most accurate '
                         f'is named')
        best[backend] = BestPick(p.variant, p.file, p.device, p.precision, p.input_size,
                                 rank_by, bool(good), tradeoff)
    return best


def _targets(rows: list[ReportRow], min_agreement: float) -> list[TargetCheck]:
    """The issue's target: INT8 on ONNX Runtime CPU >= 1.5x FP32 throughput, mAP >= 0.9.

    Speed-up and agreement are both taken against the FP32 ONNX model of the same input size
    (N-thread throughput; the 1-thread ratio is reported beside it).
    """
    checks = []
    for row in rows:
        if not row.ok or row.planned.backend != 'onnxruntime' or row.planned.device != 'cpu' \
                or row.planned.precision != 'int8' or not _ok_number(row.speedup):
            continue
        agreement = row.map50_same_size if row.map50_same_size is not None else row.map50
        checks.append(TargetCheck(
            row.planned.variant, row.planned.input_size, row.speedup, row.speedup_1t, row.map50,
            agreement,
            bool(row.speedup >= _TARGET_SPEEDUP and _ok_number(agreement)
                 and agreement >= min_agreement)))
    return checks


# -- files ------------------------------------------------------------------------------------

def _fmt(value: Any, spec: str = '.2f') -> str:
    return format(value, spec) if _ok_number(value) else '-'


def write_reports(report: BenchReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``bench.json``, ``bench.md`` and ``bench.png`` into ``out_dir``.

    Returns:
        ``{'json': path, 'markdown': path, 'png': path}`` (``png`` absent without matplotlib).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {'json': out / 'bench.json', 'markdown': out / 'bench.md'}
    paths['json'].write_text(json.dumps(report.as_dict(), indent=2) + '\n', encoding='utf-8')
    paths['markdown'].write_text(markdown(report), encoding='utf-8')
    png = out / 'bench.png'
    if plot(report, png):
        paths['png'] = png
    return paths


def markdown(report: BenchReport) -> str:
    """``bench.md``: the machine, the reference, one table row per measurement, the best
    variant per backend, the INT8 target, observations and notes."""
    m, images, ref = report.machine, report.input_set, report.reference
    settings = report.settings
    lines = [
        '# edge-vision bench', '',
        f'Created {report.created}. Machine: {m["cpu"]}, {m["cores"]} cores '
        f'({m["usable_cores"]} usable), {m["ram_gib"]} GiB RAM, {m["os"]}; CPU flags: '
        f'{", ".join(m["cpu_flags"]) or "-"}.',
        'Versions: ' + ', '.join(f'{k} {v}' for k, v in m['versions'].items()) + '.',
        'Backends here: ' + '; '.join(f'{k} ({", ".join(v)})' for k, v in
                                       m['backends'].items()) + '.', '',
        f'Evaluation images: {images["count"]} from {images["source"]}, SHA-256 '
        f'`{images["sha256"]}`.',
        f'Reference: {ref.name} FP32 ONNX on onnxruntime cpu at '
        f'{ref.input_size[0]}x{ref.input_size[1]}, {ref.boxes} boxes at score >= '
        f'{ref.score_threshold}. mAP@0.5 and mean IoU: against that reference; "mAP same '
        f'size": against the FP32 ONNX (ONNX Runtime CPU) of the row\'s own input size; '
        f'speedup: fps over the FP32 row of the same backend, device and size.',
        f'Load average (1 min) at start / end: {report.load_average}.',
        f'Runtime threads: {report.threads} (and 1 for fps 1t); {settings["iterations"]} timed '
        f'runs after {settings["warmup"]} warm-up runs; latency = bare runtime call; each row '
        f'in fresh processes; fastest of {settings.get("rounds", 1)} interleaved round(s).', '',
        '| variant | file | prec | size | backend:device | p50 ms | p95 ms | p99 ms | '
        f'fps {report.threads}t | fps 1t | speedup | speedup 1t | load s | peak RSS MB | '
        'MB | mAP@0.5 | mean IoU | mAP same size |',
        '|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ]
    failed = []
    for r in report.rows:
        if not r.ok:
            failed.append(r)
            continue
        lat, p = r.latency, r.planned
        lines.append(
            f'| {p.variant} | {p.file} | {p.precision} | {p.input_size[0]} | '
            f'{p.backend}:{p.device} | {_fmt(lat.p50)} | {_fmt(lat.p95)} | {_fmt(lat.p99)} | '
            f'{_fmt(r.fps, ".1f")} | {_fmt(r.fps_1t, ".1f")} | {_fmt(r.speedup)} | '
            f'{_fmt(r.speedup_1t)} | {_fmt(r.load_s)} | {_fmt(r.peak_rss_mb, ".0f")} '
            f'| {_fmt(r.planned.model_bytes / 1e6, ".1f")} | {_fmt(r.map50, ".3f")} | '
            f'{_fmt(r.mean_iou, ".3f")} | {_fmt(r.map50_same_size, ".3f")} |')
    texts = [r for r in report.rows if r.word_agreement is not None]
    if texts:
        lines += ['', '## Text agreement (text models)', '',
                  'Lines read with the variant in its slot of a TextReader against the lines '
                  'of the reference (word agreement: words of the reference read the same; '
                  'char agreement: 1 - character error rate).', '',
                  '| variant | file | backend:device | word agreement | char agreement |',
                  '|---|---|---|---:|---:|']
        lines += [f'| {r.planned.variant} | {r.planned.file} | {r.planned.backend}:'
                  f'{r.planned.device} | {_fmt(r.word_agreement, ".4f")} | '
                  f'{_fmt(r.char_agreement, ".4f")} |' for r in texts]
    if failed:
        lines += ['', '## Could not run', '']
        lines += [f'- {r.planned.variant} ({r.planned.file}) on {r.planned.backend}:'
                  f'{r.planned.device}: {r.error}' for r in failed]
    lines += ['', '## Best variant per backend', '']
    for backend, best in report.best_per_backend.items():
        lines.append(f'- **{backend}**: {best.variant} ({best.file}, {best.device}): '
                     f'{best.tradeoff}')
    verdict = {True: 'met', False: 'not met', None: 'no INT8 row'}[report.target_met]
    lines += ['', '## Target: INT8 on ONNX Runtime CPU', '',
              f'Needs >= {report.required_speedup}x the FP32 throughput at the same input '
              f'size with agreement mAP@0.5 >= {report.required_map50}: **{verdict}**.']
    for c in report.target_rows:
        lines.append(f'- {c.variant} ({c.input_size[0]}): {_fmt(c.speedup)}x '
                     f'({_fmt(c.speedup_1t)}x with 1 thread), mAP@0.5 '
                     f'{_fmt(c.map50_same_size, ".3f")} against FP32 at the same size: '
                     f'{"met" if c.met else "not met"}')
    lines += _observations(report.rows)
    if report.notes:
        lines += ['', '## Notes', ''] + [f'- {n}' for n in report.notes]
    return '\n'.join(lines) + '\n'


def _observations(rows: list[ReportRow]) -> list[str]:
    """What the pruned and FP16 rows show (speed against their FP32 row, agreement)."""
    out = []
    for row in rows:
        if not row.ok or not _ok_number(row.speedup):
            continue
        where = f'{row.planned.variant} on {row.planned.backend}:{row.planned.device}'
        if row.planned.recipe == 'prune':
            out.append(f'- {where}: {_fmt(row.speedup)}x the FP32 throughput '
                       f'({_fmt(row.speedup_1t)}x with 1 thread), agreement '
                       f'mAP@0.5 {_fmt(row.map50, ".3f")}. Unstructured zeros are '
                       f'still multiplied by dense kernels: no speed-up is expected, only '
                       f'the accuracy cost shows.')
        elif row.planned.precision == 'fp16' and row.planned.device.lower() == 'cpu':
            out.append(f'- {where}: {_fmt(row.speedup)}x the FP32 throughput '
                       f'({_fmt(row.speedup_1t)}x with 1 thread; {row.planned.format} '
                       f'file of {row.planned.model_bytes / 1e6:.1f} MB); on a CPU '
                       f'FP16 mostly halves the file, the arithmetic stays FP32 or pays for '
                       f'casts.')
    return ['', '## Pruning and FP16 on this machine', '', *out] if out else []


def plot(report: BenchReport, path: Path) -> bool:
    """``bench.png``: latency p50 against agreement mAP, one marker per backend (False when
    matplotlib is missing)."""
    try:
        import matplotlib
        matplotlib.use('Agg', force=False)
        from matplotlib.figure import Figure
    except ImportError:
        _LOG.warning('matplotlib is not installed: no bench.png (pip install matplotlib)')
        return False
    rows = [r for r in report.rows if r.ok and _ok_number(r.map50)]
    fig = Figure(figsize=(10, 6.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    markers = {'onnxruntime': 'o', 'openvino': 's', 'litert': '^', 'tensorrt': 'D'}
    for backend in dict.fromkeys(r.planned.backend for r in rows):
        sel = [r for r in rows if r.planned.backend == backend]
        ax.scatter([r.latency.p50 for r in sel], [r.map50 for r in sel],
                   marker=markers.get(backend, 'x'), s=45, label=backend, alpha=0.8)
        for r in sel:
            label = f'{r.planned.precision} {r.planned.input_size[0]} {r.planned.recipe}'
            ax.annotate(label, (r.latency.p50, r.map50), fontsize=6,
                        xytext=(3, 3), textcoords='offset points')
    ax.set_xlabel(f'latency p50, ms ({report.threads} threads, bare inference)')
    ax.set_ylabel('agreement mAP@0.5 with the FP32 reference')
    ax.set_title(f'edge-vision bench: {report.machine["cpu"]}', fontsize=9)
    ax.grid(True, alpha=0.3)
    if rows:
        ax.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(str(path))
    return True
