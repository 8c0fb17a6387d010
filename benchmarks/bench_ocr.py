"""OCR accuracy and speed: edge_vision's TextReader configurations against rapidocr's pipeline.

Usage::

    .venv/bin/python benchmarks/bench_ocr.py                      # tune split, default table
    .venv/bin/python benchmarks/bench_ocr.py --split heldout --rounds 2 --out report.json
    .venv/bin/python benchmarks/bench_ocr.py --configs rapidocr default ov-736 \\
        'ours:backend=onnxruntime,det_size=640,threads=1'

Images: rendered text scenes (:mod:`edge_vision_core.eval.text_scenes`: signs and labels in
DejaVu fonts warped onto scikit-image photographs, with rotation, perspective, uneven light,
blur, noise and JPEG; ``tune`` = the split the defaults were chosen on, ``heldout`` = never
looked at while choosing) plus the one real photograph of printed text that ships in a registry
package (scikit-image's ``page``, ground truth typed from the image), reported on its own row.

Every configuration reads the same decoded images (in memory: no file I/O is timed), one call
per image, configurations interleaved image by image (and ``--rounds`` times over the set) so
that load from other processes hits all of them alike; the time per image is the wall time of
that call, its median and mean over all calls are reported, with the machine's load average.

Anchor: ``rapidocr`` = ``rapidocr_onnxruntime.RapidOCR()`` with its defaults (PP-OCRv4 det at
min side 736, direction classifier, recognition in batches of 6 padded to >= 320 px; ONNX
Runtime, all cores), on the same images; its lines are scored exactly like ours.

Reported per configuration: word accuracy, character accuracy (1 - CER), word precision, line
accuracy (exact lines), time per image (median, mean) and the speed-up against rapidocr; then
agreement between configurations (the first configuration's lines as the reference: word and
character agreement) for backends and precisions.

INT8 configurations (``*-int8``) use variants made by ``edge-vision optimize`` (calibrated on
the rendered ``calib`` split, never on tune/heldout): the script makes them once into
``--variants`` (default ``/tmp/edge-vision-ocr-variants``) when they are missing.

Configuration specs: a preset name (see ``PRESETS``), ``rapidocr``, or
``ours:key=value,...`` with keys of ``TextReaderOptions`` (``det``/``rec``/``cls`` as short
names for detector/recognizer/classifier).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_vision_core.eval.ocr import OcrScore, score_image, sum_scores
from edge_vision_core.eval.text_scenes import GroundTruthLine, make_split

#: name -> TextReaderOptions overrides (INT8 names resolved against --variants). ``default``
#: is TextReaderOptions() as shipped: OpenVINO (ONNX Runtime where it is missing) on the CPU,
#: the INT8 OpenVINO detector at 960 px, box threshold 0.4, FP32 recognizer.
PRESETS: dict[str, dict[str, object]] = {
    'default': {},
    'default-1t': {'threads': 1},
    'ov-fp32': {'backend': 'openvino', 'precision': 'fp32'},
    'ov-fp32-1t': {'backend': 'openvino', 'precision': 'fp32', 'threads': 1},
    'ort-fp32': {'backend': 'onnxruntime'},
    'ort-fp32-1t': {'backend': 'onnxruntime', 'threads': 1},
    'ov-1280': {'det_size': 1280},
    'ov-1280-1t': {'det_size': 1280, 'threads': 1},
    'ov-fp32-box0.5': {'backend': 'openvino', 'precision': 'fp32', 'box_threshold': 0.5},
    'nospace': {'space_threshold': 0.0},
    'cls': {'classifier': 'ppocr-cls'},
    'ov-int8-rec': {'recognizer': '{variants}/ppocrv4-rec-openvino-int8.yaml'},
    'ort-int8-det': {'backend': 'onnxruntime',
                     'detector': '{variants}/ppocrv4-det-960-onnx-int8.yaml'},
    'ort-int8': {'backend': 'onnxruntime',
                 'detector': '{variants}/ppocrv4-det-960-onnx-int8.yaml',
                 'recognizer': '{variants}/ppocrv4-rec-onnx-int8.yaml'},
}
DEFAULT_CONFIGS = ('rapidocr', 'default', 'default-1t', 'ov-fp32', 'ort-fp32', 'ov-1280',
                   'nospace', 'cls', 'ort-int8')
#: variant file -> (source model, optimize recipe) that makes it.
VARIANTS = {
    'ppocrv4-det-960-onnx-int8.yaml': ('ppocrv4-det', 'onnx-int8'),
    'ppocrv4-rec-onnx-int8.yaml': ('ppocrv4-rec', 'onnx-int8'),
    'ppocrv4-rec-openvino-int8.yaml': ('ppocrv4-rec', 'openvino-int8'),
}
_SHORT = {'det': 'detector', 'rec': 'recognizer', 'cls': 'classifier'}

#: scikit-image's ``page`` (a photographed book page): the lines as printed, with their
#: quadrilaterals read off the image (pixels of the 384 x 191 original). The last, cut-off
#: line at the bottom edge is left out.
PAGE_TRUTH = (
    ('Region-based segmentation', [[6, 10], [293, 12], [293, 35], [6, 33]]),
    ('Let us first determine markers of the coins and the',
     [[3, 46], [380, 47], [380, 66], [3, 65]]),
    ('background. These markers are pixels that we can label',
     [[2, 63], [380, 64], [380, 86], [2, 85]]),
    ('unambiguously as either object or background. Here,',
     [[2, 81], [379, 83], [379, 104], [2, 102]]),
    ('the markers are found at the two extreme parts of the',
     [[2, 100], [380, 103], [380, 122], [2, 119]]),
    ('histogram of grey values:', [[3, 113], [173, 121], [172, 141], [3, 133]]),
    ('>>> markers = np.zeros_like(coins)', [[16, 168], [242, 170], [242, 189], [16, 187]]),
)

Lines = list[tuple[str, np.ndarray]]


def page_image() -> tuple[np.ndarray, list[GroundTruthLine]]:
    from edge_vision_core.optimize.images import sample_images

    image = sample_images(['page'])[0][1]
    return image, [GroundTruthLine(t, np.asarray(q, np.float32)) for t, q in PAGE_TRUTH]


def rapidocr_reader() -> tuple[Callable[[np.ndarray], Lines], Callable[[], None]]:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        sys.exit('the anchor needs rapidocr-onnxruntime (tools/requirements/dev.txt); '
                 'run make setup')
    engine = RapidOCR()

    def read(image: np.ndarray) -> Lines:
        result, _ = engine(image)
        return [(text, np.asarray(box, np.float32)) for box, text, _ in (result or [])]

    return read, lambda: None


def ours_reader(overrides: dict[str, object]
                ) -> tuple[Callable[[np.ndarray], Lines], Callable[[], None]]:
    from edge_vision_core.inference.ocr import TextReader

    reader = TextReader.create(**overrides)

    def read(image: np.ndarray) -> Lines:
        return [(line.text, line.polygon) for line in reader.read(image)]

    return read, reader.close


def parse_config(spec: str, variants: Path) -> dict[str, object] | None:
    """TextReaderOptions overrides of a spec; None for the rapidocr anchor."""
    if spec == 'rapidocr':
        return None
    if spec in PRESETS:
        return {k: (v.format(variants=variants) if isinstance(v, str) else v)
                for k, v in PRESETS[spec].items()}
    if not spec.startswith('ours:'):
        sys.exit(f'unknown configuration {spec!r}: a preset ({", ".join(PRESETS)}), rapidocr '
                 f'or ours:key=value,...')
    out: dict[str, object] = {}
    for item in filter(None, spec[5:].split(',')):
        key, _, value = item.partition('=')
        key = _SHORT.get(key.strip(), key.strip())
        value = value.strip()
        for kind in (int, float):
            try:
                out[key] = kind(value)
                break
            except ValueError:
                continue
        else:
            out[key] = value
    return out


def ensure_variants(folder: Path, needed: list[dict[str, object]]) -> None:
    """Make the INT8 variants the configurations name, once (edge-vision optimize)."""
    from edge_vision_core.optimize import OptimizeConfig, optimize_model

    paths = {Path(str(v)) for o in needed for k, v in o.items()
             if k in ('detector', 'recognizer') and str(v).startswith(str(folder))}
    for path in sorted(p for p in paths if not p.is_file()):
        model, recipe = VARIANTS[path.name]
        print(f'making {path} (once)', file=sys.stderr, flush=True)
        # minmax: ONNX Runtime's percentile collector holds every activation of every
        # calibration image in memory (several GB for the detector at 960 px)
        optimize_model(model, folder, OptimizeConfig(
            recipes=(recipe,), calibration_count=24, calibration_method='minmax'),
            progress=lambda line: print(line, file=sys.stderr, flush=True))


def score(truth: list[GroundTruthLine], lines: Lines) -> OcrScore:
    return score_image([(t.text, t.polygon) for t in truth], lines)


def table(rows: list[dict[str, object]]) -> str:
    head = ('| configuration | word acc | char acc (1-CER) | word prec | lines exact | '
            'page word acc | ms/image median | ms/image mean | speed-up vs rapidocr |')
    out = [head, '|' + '---|' * 9]
    for r in rows:
        out.append(f"| {r['name']} | {r['word_accuracy']:.4f} | {r['char_accuracy']:.4f} | "
                   f"{r['word_precision']:.4f} | {r['line_accuracy']:.4f} | "
                   f"{r['page_word_accuracy']:.3f} | {r['ms_median']:.0f} | {r['ms_mean']:.0f} | "
                   f"{r['speedup']:.2f}x |")
    return '\n'.join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--split', default='tune', choices=('tune', 'heldout'))
    parser.add_argument('--count', type=int, default=0, help='first N images of the split')
    parser.add_argument('--rounds', type=int, default=1, help='passes over the set (timing)')
    parser.add_argument('--configs', nargs='+', default=list(DEFAULT_CONFIGS))
    parser.add_argument('--variants', type=Path, default=Path('/tmp/edge-vision-ocr-variants'))
    parser.add_argument('--out', type=Path, help='write the report (JSON) here')
    args = parser.parse_args(argv)

    specs = list(dict.fromkeys(args.configs))
    parsed = {s: parse_config(s, args.variants) for s in specs}
    ensure_variants(args.variants, [o for o in parsed.values() if o is not None])
    scenes = make_split(args.split, args.count)
    page, page_truth = page_image()
    images = [s.image for s in scenes] + [page]
    truths = [list(s.lines) for s in scenes] + [page_truth]
    readers = {}
    for spec, overrides in parsed.items():
        readers[spec] = rapidocr_reader() if overrides is None else ours_reader(overrides)
        readers[spec][0](images[0])  # warm-up: first-call set-up is not timed
    load = [os.getloadavg()[0]]
    times: dict[str, list[float]] = {s: [] for s in specs}
    lines: dict[str, list[Lines]] = {s: [[] for _ in images] for s in specs}
    for round_index in range(args.rounds):
        for i, image in enumerate(images):
            for spec in (specs if (i + round_index) % 2 == 0 else specs[::-1]):
                t0 = time.perf_counter()
                result = readers[spec][0](image)
                times[spec].append((time.perf_counter() - t0) * 1e3)
                if round_index == 0:
                    lines[spec][i] = result
        load.append(os.getloadavg()[0])
        print(f'round {round_index + 1}/{args.rounds} done', file=sys.stderr, flush=True)
    for _, close in readers.values():
        close()
    anchor = statistics.median(times['rapidocr']) if 'rapidocr' in times else float('nan')
    rows = []
    for spec in specs:
        scene_score = sum_scores([score(truth, found) for truth, found in
                                  zip(truths[:-1], lines[spec][:-1], strict=True)])
        page_score = score(truths[-1], lines[spec][-1])
        median = statistics.median(times[spec])
        rows.append({'name': spec, 'options': parsed[spec], **scene_score.as_dict(),
                     'page_word_accuracy': page_score.word_accuracy,
                     'page_char_accuracy': page_score.char_accuracy,
                     'ms_median': median, 'ms_mean': statistics.fmean(times[spec]),
                     'speedup': anchor / median})
    reference = specs[1] if specs[0] == 'rapidocr' and len(specs) > 1 else specs[0]
    agreement = {}
    for spec in specs:
        if spec == reference:
            continue
        agree = sum_scores([score_image(lines[reference][i], lines[spec][i])
                            for i in range(len(images))])
        agreement[spec] = {'word_agreement': round(agree.word_accuracy, 4),
                           'char_agreement': round(agree.char_accuracy, 4)}
    n_lines = sum(len(t) for t in truths[:-1])
    print(f'\n{args.split} split: {len(scenes)} rendered scenes ({n_lines} lines) + '
          f'scikit-image page; {args.rounds} round(s); load average '
          f'{min(load):.1f}-{max(load):.1f} on {os.cpu_count()} cores\n')
    print(table(rows))
    print(f'\nagreement with {reference} (its lines as the reference):')
    for spec, value in agreement.items():
        print(f'  {spec}: word {value["word_agreement"]:.4f}, char {value["char_agreement"]:.4f}')
    if args.out:
        report = {'split': args.split, 'images': len(images), 'rounds': args.rounds,
                  'load_average': load, 'cores': os.cpu_count(), 'rows': rows,
                  'agreement_reference': reference, 'agreement': agreement}
        args.out.write_text(json.dumps(report, indent=1, default=str) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
