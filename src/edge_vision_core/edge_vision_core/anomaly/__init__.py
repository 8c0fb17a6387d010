"""Anomaly detection: patch features, normal-appearance models, scores, heatmaps and regions.

The parts, each usable on its own:

- :mod:`.features`: image -> multi-scale feature maps, from the ImageNet-pretrained
  EfficientNet-Lite0 (``efficientnet-lite0-features``, the default) or the COCO NanoDet backbone
  on any ONNX-reading backend, and the ``color-gradient`` statistics;
- :mod:`.embedding`: feature maps -> one embedding per patch;
- :mod:`.patchcore` (memory bank of every normal patch or a greedy coreset; nearest-neighbour
  distance, exact or by FAISS's HNSW graph with exact peaks) and
  :mod:`.padim` (a Gaussian per patch position, Mahalanobis distance), behind one interface
  in the :mod:`.methods` table (:data:`METHODS`);
- :mod:`.postprocess`: heatmap, frame score, regions, threshold calibration;
- :mod:`.model_file`: the versioned one-file model and its typed header (:class:`ModelHeader`);
- :mod:`.detector`: :class:`AnomalyDetector` (fit / score / learn-normal / save / load);
- :mod:`.synthetic_defects`: an MVTec-like benchmark from real images with synthetic defects;
  :mod:`.small_defects`: a harder one, small faint defects under camera nuisance.

Importing this package imports no inference runtime.
"""

from __future__ import annotations

from .detector import (
    AnomalyConfig,
    AnomalyDetector,
    AnomalyResult,
    AnomalyTimings,
    FitReport,
    LearningProgress,
    iter_frames,
)
from .features import (
    DEFAULT_BACKBONE,
    FeatureExtractor,
    FeatureManifest,
    FeatureMaps,
    create_feature_extractor,
    list_backbones,
    resolve_backbone,
)
from .methods import METHODS, AnomalyMethod, get_method
from .model_file import FORMAT_VERSION, BackboneRef, ModelHeader, load_model_file
from .postprocess import (
    ANOMALY_CLASS_ID,
    ANOMALY_LABELS,
    calibrate_threshold,
    confidence,
    find_regions,
)

__all__ = [
    'ANOMALY_CLASS_ID',
    'ANOMALY_LABELS',
    'DEFAULT_BACKBONE',
    'FORMAT_VERSION',
    'METHODS',
    'AnomalyConfig',
    'AnomalyDetector',
    'AnomalyMethod',
    'BackboneRef',
    'AnomalyResult',
    'AnomalyTimings',
    'FeatureExtractor',
    'FeatureManifest',
    'FeatureMaps',
    'FitReport',
    'LearningProgress',
    'ModelHeader',
    'calibrate_threshold',
    'confidence',
    'create_feature_extractor',
    'find_regions',
    'get_method',
    'iter_frames',
    'list_backbones',
    'load_model_file',
    'resolve_backbone',
]
