"""Optimization recipes and :func:`optimize_model`: variants of a model, each with a manifest.

A **recipe** turns the source model (its FP32 ONNX file, or its FP32 ``.tflite`` for
``tflite-int8``) at one input size into one optimized file:

============== ======== ========= =============================================================
recipe         format   precision how
============== ======== ========= =============================================================
onnx-fp32      onnx     fp32      the model at another input size (made for every extra size)
onnx-int8      onnx     int8      ONNX Runtime static quantization, QDQ, per-channel weights
onnx-fp16      onnx     fp16      float16 weights/activations, float32 inputs and outputs
openvino-fp16  openvino fp16      OpenVINO IR with FP16-compressed weights
openvino-int8  openvino int8      NNCF post-training quantization, saved as IR
tflite-int8    tflite   int8      AI Edge Quantizer static INT8 (native input size only)
prune          onnx     fp32      unstructured magnitude pruning at ``prune_ratio``
============== ======== ========= =============================================================

Every variant is written to the output folder as ``<name>.<ext>`` (IR: ``.xml`` + ``.bin``)
with a manifest ``<name>.yaml`` in the format of :mod:`edge_vision_core.inference.manifest`
(adapter, input size, normalisation, labels, thresholds, the file with its precision and
SHA-256) and, under its ``recipe:`` key, the recipe that made the file (tool versions,
calibration set and its SHA-256, settings, pruning sparsity), so
``Detector.create(model='<out>/<name>.yaml')`` and the inference node load it with no code
change and the file says how it was made. ``optimize_summary.json`` lists all variants of a run.

Variant names: the source name without its trailing size (``nanodet-m-416`` -> ``nanodet-m``),
the input size and the recipe: ``nanodet-m-320-onnx-int8``, ``nanodet-m-416-pruned50``.

Text models (``db_text``, ``ctc_text``, ``text_direction``: adapters with ``dynamic_input``)
take dynamic input sizes, so their files are never resized: for a ``db_text`` detector a size is
the longest side its variant's manifest asks for (and the size it is calibrated at); ``ctc_text``
and ``text_direction`` models (not ``resizable``) take no size and their variant names none.
Their default calibration images are rendered text scenes
(:func:`edge_vision_core.eval.text_scenes.scene_image_set`), their calibration inputs come from
:func:`edge_vision_core.inference.ocr.calibration_tensors` (detection inputs, or the line crops
the embedded detector finds), a dictionary file is copied beside the variant, and a variant is
verified by reading a rendered sign with it in its slot of a TextReader.

Adding a recipe is one :class:`Recipe` entry in :data:`RECIPES` (in this file): its metadata
and its ``make(job) -> RecipeOutput`` function, which writes ``job.target`` from
``job.sized_onnx`` (or its own source file), may use ``job.calibration_inputs()`` and
``job.config``, and returns the settings recorded in the variant's manifest::

    def _make_onnx_dynamic(job: RecipeJob) -> RecipeOutput:
        from onnxruntime.quantization import quantize_dynamic
        quantize_dynamic(job.sized_onnx, job.target)                # writes the file
        return RecipeOutput({'tool': 'onnxruntime.quantization.quantize_dynamic'})

    Recipe('onnx-dynamic', 'onnx', 'int8', ('onnx', 'onnxruntime'), 'onnx onnxruntime', False,
           'ONNX Runtime dynamic INT8 (weights)', _make_onnx_dynamic, by_default=False),

The manifest writer, the verification on the format's backend, ``--list-recipes``, the
``recipes`` choices and the summary follow from the entry. A recipe that needs a new user
setting also adds its field to :class:`OptimizeConfig` (here) and, for the command line, an
option in ``edge_vision/commands/optimize.py``.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import json
import logging
import platform
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import check_config, config_to_mapping, param
from ..errors import ConfigError, EdgeVisionError, ModelError
from ..inference.adapters import get_adapter
from ..inference.manifest import (
    FORMATS,
    ModelFile,
    ModelManifest,
    load_manifest,
    model_file_bytes,
    resolve_model,
    sha256_file,
    verify_checksum,
)
from ..registry import Registry
from . import onnx_ops
from .images import ImageSet, load_image_set

__all__ = [
    'RECIPES',
    'OptimizeConfig',
    'OptimizedModel',
    'Recipe',
    'RecipeJob',
    'RecipeOutput',
    'get_recipe',
    'optimize_model',
    'register_recipe',
    'recipe_available',
    'variant_name',
]

_LOG = logging.getLogger(__name__)


@dataclass
class RecipeJob:
    """What a recipe's ``make`` gets: one recipe at one input size of one source model.

    Attributes:
        source: the source model's manifest.
        size: the square input size of the variant.
        sized_onnx: the source's FP32 ONNX file at ``size`` (None when it has none).
        target: the file to write (``<variant name><suffix of the recipe's format>``).
        config: the run's settings (recipe settings such as ``prune_ratio`` included).
        images: the calibration set (calibrated recipes), else None.
        work: a temporary folder for intermediate files, removed after the run.
        say: progress lines.
    """

    source: ModelManifest
    size: int
    sized_onnx: Path | None
    target: Path
    config: OptimizeConfig
    images: ImageSet | None
    work: Path
    say: Callable[[str], None]
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def calibration_inputs(self) -> list[np.ndarray] | None:
        """The calibration images preprocessed into inputs of the FP32 ONNX at this size
        (computed once per size, shared by the recipes of that size); None without an ONNX
        file or a calibration set."""
        if self.sized_onnx is None or self.images is None:
            return None
        if 'inputs' not in self.cache:
            self.cache['inputs'] = _preprocessed(
                self.source, ModelFile(self.sized_onnx, 'onnx', 'fp32'), 'onnxruntime',
                self.images, self.size)
        return self.cache['inputs']


@dataclass(frozen=True)
class RecipeOutput:
    """What a recipe's ``make`` returns after writing ``job.target``.

    Attributes:
        settings: the tool and settings that made the file (the record's ``settings``).
        extra: more record keys (e.g. ``pruning`` statistics).
        source_file: the file it started from, when not the FP32 ONNX (``tflite-int8``).
    """

    settings: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    source_file: ModelFile | None = None


@dataclass(frozen=True)
class Recipe:
    """One optimization recipe (see the module docstring's table), the code included.

    Attributes:
        name: registry key.
        format: manifest format of the output (``onnx``, ``openvino``, ``tflite``).
        precision: manifest precision of the output.
        modules: Python modules it needs (checked with importlib, imported when it runs); a
            submodule where only some releases of a package have it.
        install: what to pip install when a module is missing.
        calibrated: True when it needs calibration images.
        summary: one line for manifests and reports.
        make: writes ``job.target`` from the source model and returns what it did.
        source_format: the source file it starts from: its FP32 ``onnx`` file (at the
            variant's size) or its FP32 ``tflite`` file.
        native_size_only: why it cannot make other input sizes than the source's; empty
            when it can.
        resizes: True for the recipe that makes the FP32 ONNX at another input size: it runs
            first for every extra size (the other recipes start from its file).
        by_default: run when ``OptimizeConfig.recipes`` is not given.
        tag: the variant-name suffix for the run's settings (default: the recipe name).
    """

    name: str
    format: str
    precision: str
    modules: tuple[str, ...]
    install: str
    calibrated: bool
    summary: str
    make: Callable[[RecipeJob], RecipeOutput]
    source_format: str = 'onnx'
    native_size_only: str = ''
    resizes: bool = False
    by_default: bool = True
    tag: Callable[[OptimizeConfig], str] | None = None

    def variant_tag(self, config: OptimizeConfig) -> str:
        return self.tag(config) if self.tag is not None else self.name


def _make_resized(job: RecipeJob) -> RecipeOutput:
    source, size = job.source, job.size
    onnx_file = _fp32_file(source, 'onnx')
    if get_adapter(source.adapter).dynamic_input:  # same file, another default size
        shutil.copyfile(onnx_file.path, job.target)
        return RecipeOutput({'tool': 'copy (dynamic input size)',
                             'from_size': source.input_size[0]})
    onnx_ops.set_input_size(onnx_file.path, job.target, size, size)
    onnx_ops.check_outputs(job.target, (1, source.channels, size, size)
                           if source.layout == 'NCHW' else (1, size, size, source.channels))
    return RecipeOutput({'tool': 'onnx shape inference', 'from_size': source.input_size[0]})


def _make_onnx_int8(job: RecipeJob) -> RecipeOutput:
    c = job.config
    return RecipeOutput(onnx_ops.quantize_int8(
        job.sized_onnx, job.target, job.calibration_inputs(), method=c.calibration_method,
        per_channel=c.per_channel, activation_type=c.activation_type,
        pre_process=c.pre_process, work_dir=job.work))


def _make_onnx_fp16(job: RecipeJob) -> RecipeOutput:
    onnx_ops.convert_fp16(job.sized_onnx, job.target)
    return RecipeOutput({'tool': 'onnxruntime.transformers.float16', 'keep_io_types': True})


def _make_openvino_fp16(job: RecipeJob) -> RecipeOutput:
    from .openvino_ops import save_ir
    return RecipeOutput(save_ir(job.sized_onnx, job.target, compress_to_fp16=True))


def _make_openvino_int8(job: RecipeJob) -> RecipeOutput:
    from .openvino_ops import quantize_nncf
    return RecipeOutput(quantize_nncf(job.sized_onnx, job.target, job.calibration_inputs(),
                                      preset=job.config.nncf_preset))


def _make_tflite_int8(job: RecipeJob) -> RecipeOutput:
    from .tflite_ops import quantize_tflite_int8
    src_file = _fp32_file(job.source, 'tflite')
    verify_checksum(src_file)
    # native size only, so the ONNX model's inputs are the same; without one, the TFLite's own
    inputs = job.calibration_inputs()
    if inputs is None:
        inputs = _preprocessed(job.source, src_file, 'litert', job.images)
    return RecipeOutput(quantize_tflite_int8(src_file.path, job.target, inputs),
                        source_file=src_file)


def _make_pruned(job: RecipeJob) -> RecipeOutput:
    ratio = job.config.prune_ratio
    stats = onnx_ops.prune_magnitude(job.sized_onnx, job.target, ratio)
    job.say(f'[{job.size}] prune: {stats.tensors} tensors, sparsity {stats.sparsity:.3f}')
    settings = {'tool': 'edge_vision_core.optimize.onnx_ops.prune_magnitude', 'ratio': ratio,
                'scope': 'Conv/Gemm/MatMul weights, per tensor, tensors >= 256 elements'}
    return RecipeOutput(settings, extra={'pruning': {
        'requested': stats.ratio, 'sparsity': stats.sparsity, 'tensors': stats.tensors,
        'weights': stats.weights, 'zeros': stats.zeros}})


def _check_recipe(recipe: Recipe, table: Mapping[str, Recipe]) -> None:
    if not isinstance(recipe, Recipe):
        raise TypeError(f'a recipe must be a Recipe, got {recipe!r}')
    if recipe.format not in FORMATS or recipe.source_format not in FORMATS:
        raise ValueError(f'recipe {recipe.name!r}: unknown format; formats: {list(FORMATS)}')
    if recipe.resizes and any(r.resizes for r in table.values()):
        raise ValueError(f'recipe {recipe.name!r}: only one recipe makes the FP32 ONNX at '
                         f'other sizes (resizes=True)')


#: Every recipe, by name: metadata and code. One entry per recipe.
RECIPES: Registry[Recipe] = Registry('recipe', ConfigError, _check_recipe, [
    Recipe('onnx-fp32', 'onnx', 'fp32', ('onnx', 'onnxruntime'), 'onnx onnxruntime', False,
           'ONNX FP32 at another input size', _make_resized, resizes=True, by_default=False),
    Recipe('onnx-int8', 'onnx', 'int8', ('onnx', onnx_ops.ORT_QUANTIZATION),
           'onnx onnxruntime', True, 'ONNX Runtime static INT8 (QDQ, per-channel weights)',
           _make_onnx_int8),
    Recipe('onnx-fp16', 'onnx', 'fp16', ('onnx', onnx_ops.ORT_FLOAT16), 'onnx onnxruntime',
           False, 'ONNX FP16 (float32 inputs/outputs)', _make_onnx_fp16),
    Recipe('openvino-fp16', 'openvino', 'fp16', ('openvino',), 'openvino', False,
           'OpenVINO IR, FP16-compressed weights', _make_openvino_fp16),
    Recipe('openvino-int8', 'openvino', 'int8', ('openvino', 'nncf'), 'openvino nncf', True,
           'OpenVINO IR, NNCF post-training INT8', _make_openvino_int8),
    Recipe('tflite-int8', 'tflite', 'int8', ('ai_edge_litert', 'ai_edge_quantizer'),
           'ai-edge-quantizer', True, 'TFLite static INT8 (AI Edge Quantizer)',
           _make_tflite_int8, source_format='tflite',
           native_size_only='a TFLite model cannot be resized without TensorFlow'),
    Recipe('prune', 'onnx', 'fp32', ('onnx',), 'onnx', False,
           'ONNX FP32, unstructured magnitude pruning', _make_pruned,
           tag=lambda config: f'pruned{round(config.prune_ratio * 100)}'),
])


def register_recipe(recipe: Recipe) -> Recipe:
    """Add ``recipe`` to :data:`RECIPES` at run time (a plugin, a test) and return it.

    Recipes shipped with edge_vision are entries of the table literal above instead.

    Raises:
        ValueError: the name is taken, an unknown format, or a second resizing recipe.
        TypeError: not a Recipe.
    """
    return RECIPES.register(recipe)


def get_recipe(name: str) -> Recipe:
    """The recipe registered under ``name``.

    Raises:
        ConfigError: "unknown recipe 'x', expecting one of [...]".
    """
    return RECIPES.lookup(name)


_DEFAULT_RECIPES = tuple(name for name, recipe in RECIPES.items() if recipe.by_default)


@dataclass(frozen=True)
class OptimizeConfig:
    """Settings of :func:`optimize_model` (``edge-vision optimize`` options)."""

    recipes: tuple[str, ...] = field(default=_DEFAULT_RECIPES, metadata=param(
        f'Recipes to run: {", ".join(RECIPES)}.'))
    sizes: tuple[int, ...] = field(default=(), metadata=param(
        'Square input sizes to make variants for (multiples of the largest stride, e.g. 320 '
        '416 512); empty = the model\'s own size only.', min=32, max=4096, unit='px'))
    calibration: str = field(default='', metadata=param(
        'Calibration images: a folder of images, a video file, or empty for the default set '
        '(scikit-image photographs with random crops, flips and colour changes).'))
    calibration_count: int = field(default=32, metadata=param(
        'Number of calibration images (frames sampled evenly from a video or folder).',
        min=1, max=10000))
    calibration_method: str = field(default='percentile', metadata=param(
        'ONNX Runtime activation range estimate: minmax, entropy or percentile (99.999 %; '
        'the default: on NanoDet it kept agreement mAP@0.5 at 0.975 where minmax gave 0.90).',
        choices=onnx_ops.CALIBRATION_METHODS))
    per_channel: bool = field(default=True, metadata=param(
        'ONNX Runtime INT8: one weight scale per output channel (else per tensor).'))
    activation_type: str = field(default='uint8', metadata=param(
        'ONNX Runtime INT8 activations: uint8 (U8S8, fastest on x86) or int8 (S8S8).',
        choices=('uint8', 'int8')))
    pre_process: bool = field(default=True, metadata=param(
        "Run ONNX Runtime's quant_pre_process (graph optimization, shape inference) before "
        'quantizing.'))
    nncf_preset: str = field(default='mixed', metadata=param(
        'NNCF preset: performance (symmetric activations) or mixed (asymmetric activations, '
        'more exact after LeakyReLU).', choices=('performance', 'mixed')))
    prune_ratio: float = field(default=0.3, metadata=param(
        'Fraction of each Conv/Gemm weight tensor set to zero by the prune recipe (no '
        'fine-tuning follows: on NanoDet 0.3 kept mAP@0.5 agreement at 0.98, 0.5 fell to 0.36).',
        min=0.0, max=0.99))
    seed: int = field(default=0, metadata=param(
        'Seed of the default calibration set augmentations.', min=0, max=2**31 - 1))
    skip_unavailable: bool = field(default=True, metadata=param(
        'Skip (and report) recipes whose package is not installed or whose source file is '
        'missing, instead of failing.'))
    verify: bool = field(default=True, metadata=param(
        'Load every written variant through its manifest with the Detector to prove it works.'))

    def __post_init__(self) -> None:
        check_config(self)
        if not self.recipes:
            raise ConfigError('OptimizeConfig.recipes is empty; name at least one of '
                              f'{", ".join(RECIPES)}')
        for name in self.recipes:
            try:
                get_recipe(name)
            except ConfigError as exc:
                raise ConfigError(f'OptimizeConfig.recipes: {exc}') from None
        if len(set(self.sizes)) != len(self.sizes):
            raise ConfigError(f'OptimizeConfig.sizes has duplicates: {list(self.sizes)}')


@dataclass(frozen=True)
class OptimizedModel:
    """One variant written by :func:`optimize_model`.

    Attributes:
        name: manifest name.
        manifest: path of ``<name>.yaml``.
        recipe: the recipe record, also the manifest's ``recipe:`` mapping.
    """

    name: str
    manifest: Path
    recipe: dict[str, Any]


def recipe_available(name: str, source: ModelManifest | None = None) -> str:
    """'' when recipe ``name`` can run here (on ``source``), else the reason it cannot."""
    recipe = get_recipe(name)
    problems = [p for p in map(_module_problem, recipe.modules) if p]
    if problems:
        return f'needs {"; ".join(problems)} (pip install -U {recipe.install})'
    if source is not None and _fp32_file(source, recipe.source_format) is None:
        return f'the source model {source.name!r} has no FP32 {recipe.source_format} file'
    return ''


def _module_problem(module: str) -> str:
    """'' when ``module`` can be imported here, else what is wrong (not installed, or a release
    of its package without it: e.g. onnxruntime 1.12, the newest for Ubuntu 22.04's numpy 1.21,
    has no quantization.shape_inference, and its transformers package imports torch)."""
    try:
        if importlib.util.find_spec(module) is not None:
            return ''
        error = ''
    except ImportError as exc:  # a parent package of the submodule failed to import
        error = f' ({type(exc).__name__}: {exc})'
    top = module.split('.', 1)[0]
    version = getattr(sys.modules.get(top), '__version__', '')
    if module == top or not version:
        return f'{module}{error}'
    return f'{module}, which {top} {version} does not provide{error}'


def _base_name(manifest: ModelManifest) -> str:
    w, h = manifest.input_size
    size = f'{w}' if w == h else f'{w}x{h}'
    name = manifest.name
    return name[:-len(size) - 1] if name.endswith(f'-{size}') else name


def variant_name(manifest: ModelManifest, size: int, recipe: str,
                 config: OptimizeConfig | None = None) -> str:
    """The name of a variant (see the module docstring); ``config`` gives the recipe settings
    that appear in the name (the prune ratio), default :class:`OptimizeConfig`."""
    tag = get_recipe(recipe).variant_tag(config or OptimizeConfig())
    if not get_adapter(manifest.adapter).resizable:  # no input size to name
        return f'{_base_name(manifest)}-{tag}'
    return f'{_base_name(manifest)}-{size}-{tag}'


def _fp32_file(manifest: ModelManifest, fmt: str) -> ModelFile | None:
    """The manifest's FP32 file of format ``fmt``, or None."""
    return next((f for f in manifest.files if f.format == fmt and f.precision == 'fp32'), None)


def _versions() -> dict[str, str]:
    out = {'python': platform.python_version(), 'numpy': np.__version__}
    for module, dist in (('onnx', 'onnx'), ('onnxruntime', 'onnxruntime'),
                         ('openvino', 'openvino'), ('nncf', 'nncf'),
                         ('ai_edge_litert', 'ai-edge-litert'),
                         ('ai_edge_quantizer', 'ai-edge-quantizer')):
        if importlib.util.find_spec(module) is None:
            continue
        try:
            from importlib.metadata import version
            out[module] = version(dist)
        except Exception:
            out[module] = 'unknown'
    return out


def check_writable(out_dir: Path, what: str = 'the output folder',
                   fix: str = 'choose a folder you can write to') -> None:
    """Create ``out_dir`` and write a file in it, or raise a ConfigError naming ``what`` and
    ``fix`` (before any slow work whose results would have nowhere to go)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix='.write-test-'):
            pass
    except OSError as exc:
        raise ConfigError(f'cannot write to {what} {out_dir}: {exc.strerror or exc}; {fix}'
                          ) from exc


def _manifest_dict(source: ModelManifest, name: str, size: tuple[int, int], file: Path,
                   fmt: str, precision: str, description: str) -> dict[str, Any]:
    m = source
    data: dict[str, Any] = {
        'name': name,
        'description': description,
        'adapter': m.adapter,
        'files': [{'path': file.name, 'format': fmt, 'precision': precision,
                   'sha256': sha256_file(file)}],
        'input_size': [int(size[0]), int(size[1])],
        'layout': m.layout,
        'color_order': m.color_order,
        'mean': [float(v) for v in m.mean],
        'std': [float(v) for v in m.std],
        'resize': m.resize,
        'pad_value': float(m.pad_value),
        'score_threshold': float(m.score_threshold),
        'nms_threshold': float(m.nms_threshold),
        'max_detections': int(m.max_detections),
    }
    data.update(get_adapter(m.adapter).options_to_dict(m.options))
    if m.license:
        data['license'] = m.license
    data['labels'] = list(m.labels)
    return data


def _write_variant(out_dir: Path, source: ModelManifest, name: str, size: int, file: Path,
                   recipe: Recipe, record: dict[str, Any]) -> OptimizedModel:
    import yaml

    shape = _variant_size(source, size)
    description = (f'{name}: {recipe.summary} of {source.name} at {shape[0]}x{shape[1]}, made '
                   f'by edge-vision optimize (see recipe)')
    data = _manifest_dict(source, name, shape, file, recipe.format, recipe.precision,
                          description)
    if data.get('dictionary'):  # a text recognizer's: copied beside the variant
        copy = out_dir / f'{name}.dict.txt'
        shutil.copyfile(data['dictionary'], copy)
        data['dictionary'] = copy.name
    # JSON round trip: plain lists/dicts/scalars only, as YAML's safe dumper needs.
    record = json.loads(json.dumps(dict(record, file=file.name,
                                        file_sha256=data['files'][0]['sha256'],
                                        file_bytes=model_file_bytes(file))))
    data['recipe'] = record
    settings = ', '.join(f'{k}={v}' for k, v in record.get('settings', {}).items()
                         if not isinstance(v, (dict, list)))
    lines = [f'{name}: written by edge-vision optimize (recipe {recipe.name}); do not edit.',
             *textwrap.wrap(f'{recipe.summary}; {settings}', 95)]
    header = ''.join(f'# {line}\n' for line in lines)
    manifest_path = out_dir / f'{name}.yaml'
    manifest_path.write_text(header + yaml.safe_dump(data, sort_keys=False, width=99),
                             encoding='utf-8')
    load_manifest(manifest_path)  # the manifest reader accepts what was written
    return OptimizedModel(name, manifest_path, record)


def _variant_size(source: ModelManifest, size: int) -> tuple[int, int]:
    """The input size a variant's manifest says: ``size`` squared, or the source's own for
    families with a fixed size (text recognizers)."""
    return (size, size) if get_adapter(source.adapter).resizable else source.input_size


def _preprocessed(manifest: ModelManifest, model_file: ModelFile, backend: str,
                  images: ImageSet, size: int | None = None) -> list[np.ndarray]:
    """The model inputs of the calibration images, preprocessed exactly as the Detector does
    (``model_file`` on ``backend``, at ``size`` when given), or as the TextReader does for
    text models."""
    from ..inference.detector import Detector, DetectorOptions
    from ..inference.ocr import SLOTS, calibration_tensors

    changes: dict[str, Any] = {'files': (model_file,)}
    if size is not None:
        changes['input_size'] = _variant_size(manifest, size)
    only = dataclasses.replace(manifest, **changes)
    if manifest.adapter in SLOTS:
        return calibration_tensors(only, images.images)
    with Detector.from_manifest(only, DetectorOptions(backend=backend, device='cpu',
                                                      verify_checksum=False)) as detector:
        return [detector.preprocess(image).inputs[0].copy() for image in images.images]


def _verify(manifest_path: Path, recipe: Recipe) -> None:
    """Load the variant on the runtime of its format and run it once (ModelError if not)."""
    from ..inference.backends import BACKEND_FORMATS, BACKENDS
    from ..inference.detector import Detector

    # the backend whose preferred format it is (onnx: onnxruntime, openvino: openvino...)
    backend = next(name for name, formats in BACKEND_FORMATS.items()
                   if formats[:1] == (recipe.format,))
    if not BACKENDS[backend].is_installed():
        return
    from ..inference.ocr import SLOTS
    adapter = load_manifest(manifest_path).adapter
    if adapter in SLOTS:
        _verify_text(manifest_path, SLOTS[adapter], backend)
        return
    try:
        # the file was hashed a moment ago, when its manifest was written
        with Detector.create(model=str(manifest_path), backend=backend, device='cpu',
                             verify_checksum=False) as det:
            det.warmup(1)
    except EdgeVisionError as exc:
        raise ModelError(f'the variant {manifest_path} does not load on {backend}: {exc}'
                         ) from exc


def _verify_text(manifest_path: Path, slot: str, backend: str) -> None:
    """Read a drawn sign with a text-model variant in its slot of a TextReader."""
    import cv2

    from ..inference.ocr import TextReader

    sign = np.full((120, 400, 3), 235, np.uint8)
    cv2.putText(sign, 'GATE 7', (30, 80), cv2.FONT_HERSHEY_DUPLEX, 1.8, (20, 20, 20), 3)
    try:
        with TextReader.create(backend=backend, device='cpu', verify_checksum=False,
                               **{slot: str(manifest_path)}) as reader:
            reader.read(sign)
    except EdgeVisionError as exc:
        raise ModelError(f'the variant {manifest_path} does not load on {backend}: {exc}'
                         ) from exc


def optimize_model(model: str | Path | ModelManifest, out_dir: str | Path,
                   config: OptimizeConfig | None = None,
                   progress: Callable[[str], None] | None = None) -> list[OptimizedModel]:
    """Write the optimized variants of ``model`` into ``out_dir``.

    Args:
        model: a registered name, a manifest path, a model file with a sibling manifest, or a
            loaded manifest.
        out_dir: folder for the variants (created; nothing is written elsewhere except the
            system temp folder for intermediate files).
        config: recipes, sizes, calibration and recipe settings.
        progress: called with one line per step (default: logging at INFO).

    Returns:
        The variants written, in the order they were made.

    Raises:
        ConfigError: bad settings, an unwritable folder, a size that is not a multiple of the
            model's largest stride, or (with ``skip_unavailable=False``) an unavailable recipe.
        SourceError: calibration images that cannot be read.
        ModelError: a source model without the needed file, or a failing conversion.
    """
    config = config or OptimizeConfig()
    say = progress or (lambda line: _LOG.info('%s', line))
    source = model if isinstance(model, ModelManifest) else resolve_model(model)
    out = Path(out_dir).expanduser()
    check_writable(out)
    native_w, native_h = source.input_size
    adapter = get_adapter(source.adapter)
    stride = adapter.size_multiple(source.options)
    sizes = tuple(config.sizes) or (native_w,)
    if not adapter.resizable and config.sizes:
        raise ConfigError(f'{source.name} is a {source.adapter} model: its input size is '
                          f'fixed by the family (a text recognizer\'s height) and its width '
                          f'follows each input; --sizes applies to detection models')
    if native_w != native_h and not config.sizes and adapter.resizable:
        raise ConfigError(f'{source.name} has a non-square input {native_w}x{native_h}; give '
                          f'square sizes explicitly')
    for size in sizes:
        if size % stride:
            raise ConfigError(f'input size {size} is not a multiple of the largest stride '
                              f'{stride} of {source.name}; use e.g. '
                              f'{max(stride, size // stride * stride)} or '
                              f'{(size // stride + 1) * stride}')
    recipes = list(dict.fromkeys(config.recipes))
    skipped: dict[str, str] = {}
    for name in list(recipes):
        reason = recipe_available(name, source)
        if reason:
            if not config.skip_unavailable:
                raise ConfigError(f'recipe {name!r} cannot run here: {reason}')
            say(f'skipping {name}: {reason}')
            skipped[name] = reason
            recipes.remove(name)
    onnx_file = _fp32_file(source, 'onnx')
    needs_onnx = any(RECIPES[r].source_format == 'onnx' for r in recipes) or \
        sizes != (native_w,)
    if needs_onnx and onnx_file is None:
        raise ModelError(f'{source.name} ({source.source}) has no FP32 ONNX file; the '
                         f'ONNX/OpenVINO recipes and size variants start from one')
    if onnx_file is not None:
        verify_checksum(onnx_file)
    images: ImageSet | None = None
    if any(RECIPES[r].calibrated for r in recipes):
        from ..inference.ocr import SLOTS
        if source.adapter in SLOTS and not config.calibration:
            from ..eval.text_scenes import scene_image_set
            images = scene_image_set('calib', config.calibration_count)
        else:
            images = load_image_set(config.calibration, config.calibration_count, config.seed)
        say(f'calibration set: {len(images)} images from {images.source} '
            f'(sha256 {images.sha256[:12]})')
    versions = _versions()
    made: list[OptimizedModel] = []
    work = Path(tempfile.mkdtemp(prefix='edge-vision-optimize-'))
    try:
        for size in sizes:
            made.extend(_optimize_size(source, onnx_file, size, recipes, config, images,
                                       versions, out, work, say, skipped))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        'source': {'name': source.name, 'manifest': source.source},
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'settings': config_to_mapping(config),
        'calibration': images.describe() if images else None,
        'versions': versions,
        'variants': [{'name': m.name, 'manifest': m.manifest.name,
                      'recipe': m.recipe['recipe'], 'precision': m.recipe['precision'],
                      'format': m.recipe['format'], 'input_size': m.recipe['input_size'],
                      'file_bytes': m.recipe['file_bytes'],
                      **({'pruning': m.recipe['pruning']} if 'pruning' in m.recipe else {})}
                     for m in made],
        'skipped': skipped,
    }
    (out / 'optimize_summary.json').write_text(json.dumps(summary, indent=2) + '\n',
                                               encoding='utf-8')
    return made


def _optimize_size(source: ModelManifest, onnx_file: ModelFile | None, size: int,
                   recipes: list[str], config: OptimizeConfig, images: ImageSet | None,
                   versions: dict[str, str], out: Path, work: Path,
                   say: Callable[[str], None], skipped: dict[str, str]) -> list[OptimizedModel]:
    native = source.input_size[0]
    made: list[OptimizedModel] = []
    base_record = {
        'source_model': {'name': source.name, 'manifest': source.source},
        'input_size': list(_variant_size(source, size)),
        'versions': versions,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    }

    def record(recipe: Recipe, settings: dict[str, Any], calibrated: bool,
               source_file: ModelFile) -> dict[str, Any]:
        return dict(base_record, recipe=recipe.name, summary=recipe.summary,
                    format=recipe.format, precision=recipe.precision, settings=settings,
                    source_file={'path': source_file.path.name, 'format': source_file.format,
                                 'precision': source_file.precision,
                                 'sha256': source_file.sha256 or sha256_file(source_file.path)},
                    calibration=images.describe() if calibrated and images else None)

    def job(recipe: Recipe, sized_onnx: Path | None) -> tuple[str, RecipeJob]:
        name = variant_name(source, size, recipe.name, config)
        target = out / f'{name}{FORMATS[recipe.format][0]}'
        say(f'[{size}] {recipe.name} -> {target.name}')
        return name, RecipeJob(source, size, sized_onnx, target, config,
                               images if recipe.calibrated else None, work, say, cache)

    cache: dict[str, Any] = {}  # shared by the recipes of this size (calibration inputs)
    # The FP32 ONNX at this size: the starting point of every ONNX/OpenVINO recipe.
    resizer = next(r for r in RECIPES.values() if r.resizes)
    sized_onnx: Path | None = None
    if onnx_file is not None:
        if size == native:
            sized_onnx = onnx_file.path
        else:
            name, resize_job = job(resizer, None)
            output = resizer.make(resize_job)
            made.append(_write_variant(out, source, name, size, resize_job.target, resizer,
                                       record(resizer, output.settings, False, onnx_file)))
            sized_onnx = resize_job.target
    sized_file: ModelFile | None = None
    for recipe_name in recipes:
        recipe = RECIPES[recipe_name]
        if recipe.resizes:
            if size == native:
                say(f'[{size}] {recipe.name}: the source model is already FP32 ONNX at {size}')
            continue
        if recipe.native_size_only and size != native:
            skipped[f'{recipe.name}@{size}'] = f'{recipe.native_size_only}; native size only'
            say(f'[{size}] skipping {recipe.name}: native size ({native}) only')
            continue
        name, recipe_job = job(recipe, sized_onnx)
        output = recipe.make(recipe_job)
        src_file = output.source_file or onnx_file
        if output.source_file is None and size != native and sized_onnx is not None:
            if sized_file is None:  # hashed once per size, not once per recipe
                sized_file = ModelFile(sized_onnx, 'onnx', 'fp32', sha256_file(sized_onnx))
            src_file = sized_file
        rec = dict(record(recipe, output.settings, recipe.calibrated, src_file), **output.extra)
        variant = _write_variant(out, source, name, size, recipe_job.target, recipe, rec)
        if config.verify:
            _verify(variant.manifest, recipe)
        made.append(variant)
    return made
