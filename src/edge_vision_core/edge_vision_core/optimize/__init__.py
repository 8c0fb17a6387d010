"""Model optimization: quantization, pruning, input-size variants, hardware benchmarks.

- :mod:`.recipes`: the ``RECIPES`` table (ONNX Runtime INT8, ONNX FP16, OpenVINO FP16 IR and
  NNCF INT8 IR, TFLite INT8, magnitude pruning, other input sizes; each entry with its code)
  and :func:`optimize_model`, which writes optimized variants of a model, each with a manifest
  the Detector loads that records how it was made;
- :mod:`.images`: calibration and evaluation image sets (folder, video or the offline default)
  and their SHA-256;
- :mod:`.onnx_ops`, :mod:`.openvino_ops`, :mod:`.tflite_ops`: the transforms, one file in, one
  file out;
- :mod:`.bench`: :func:`run_benchmark` measures every variant on every installed backend and
  device (latency, throughput, memory, size, load time, agreement with the FP32 reference) and
  writes JSON, Markdown and a PNG plot (``bench.plan``, ``bench.measure``, ``bench.report``).

Importing this package imports no runtime and no optional package.
"""

from __future__ import annotations

from .images import ImageSet, default_calibration_images, default_eval_images, load_image_set
from .recipes import (
    RECIPES,
    OptimizeConfig,
    OptimizedModel,
    Recipe,
    RecipeJob,
    RecipeOutput,
    optimize_model,
    register_recipe,
    variant_name,
)

__all__ = [
    'RECIPES',
    'ImageSet',
    'OptimizeConfig',
    'OptimizedModel',
    'Recipe',
    'RecipeJob',
    'RecipeOutput',
    'default_calibration_images',
    'default_eval_images',
    'load_image_set',
    'optimize_model',
    'register_recipe',
    'variant_name',
]
