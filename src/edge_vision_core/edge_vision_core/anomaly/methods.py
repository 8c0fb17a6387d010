"""The anomaly methods: one table of objects that fit, score and save a normal-appearance model.

Every method is an :class:`AnomalyMethod` in :data:`METHODS`; the detector never asks which one
it holds. A method

- starts a :class:`MethodFitter` that takes the (h, w, D) patch-embedding grid of every normal
  image (:meth:`MethodFitter.add`), builds the :class:`MethodModel` (:meth:`MethodFitter.build`)
  and, for the threshold calibration, the model *without* some of the images
  (:meth:`MethodFitter.without`);
- restores a model from the arrays of a model file (:meth:`AnomalyMethod.from_arrays`, which
  checks their dtypes and their shapes against the header's declared embedding dimension and
  grid).

A :class:`MethodModel` scores an embedding grid (one score per patch, higher = less normal),
gives the weight of a frame score (:meth:`MethodModel.frame_weight`: PatchCore's reweighting by
the density of the memory bank around the nearest normal patch; 1 for PaDiM) and returns the
arrays a model file stores.

Adding a method is one new :class:`AnomalyMethod` subclass and one entry in :data:`METHODS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from ..errors import ConfigError, ModelError
from .padim import PadimAccumulator, PadimModel
from .patchcore import MemoryBankBuilder, PatchCoreModel

__all__ = ['METHODS', 'AnomalyMethod', 'MethodFitter', 'MethodModel', 'check_float32',
           'get_method']


class MethodModel(Protocol):
    """A fitted model (:class:`~.patchcore.PatchCoreModel`, :class:`~.padim.PadimModel`)."""

    @property
    def dim(self) -> int:
        """Embedding dimension D the model expects."""

    @property
    def size(self) -> int:
        """Size of the model in its method's :attr:`AnomalyMethod.size_unit`."""

    def score(self, grid: np.ndarray) -> np.ndarray:
        """(h, w, D) float32 embeddings -> (h, w) float32 patch scores (>= 0)."""

    def frame_weight(self, grid: np.ndarray, cell: tuple[int, int]) -> float:
        """Factor applied to the frame score, given the grid and its most anomalous cell."""

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays a model file stores (names of :attr:`AnomalyMethod.array_names`)."""


class MethodFitter(ABC):
    """Accumulates the normal images' embeddings of one fit."""

    @abstractmethod
    def add(self, grid: np.ndarray, valid: np.ndarray, source: int) -> None:
        """Add one image: (h, w, D) embeddings, (h, w) bool cells on the image, its index."""

    @abstractmethod
    def build(self) -> MethodModel:
        """The model of every image added (may be called once)."""

    @abstractmethod
    def without(self, model: MethodModel, sources: Sequence[int],
                grids: Sequence[np.ndarray]) -> MethodModel:
        """``model`` without the images ``sources`` (whose grids are ``grids``): the out-of-fold
        model that scores them for the threshold calibration."""


class AnomalyMethod(ABC):
    """One entry of :data:`METHODS`.

    Attributes:
        name: the ``method`` value (config, CLI and model files).
        description: one line for parameter descriptions and help texts.
        default_dim: embedding dimension of the random projection when ``feature_dim`` is 0.
        array_names: arrays of its model files.
        size_unit: what :attr:`MethodModel.size` counts.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    default_dim: ClassVar[int]
    array_names: ClassVar[tuple[str, ...]]
    size_unit: ClassVar[str]

    @abstractmethod
    def fitter(self, config: Any) -> MethodFitter:
        """A fitter with the method's settings from an ``AnomalyConfig``."""

    @abstractmethod
    def from_arrays(self, arrays: Mapping[str, np.ndarray], dim: int,
                    grid: tuple[int, int], config: Any) -> MethodModel:
        """The model stored in a file's arrays.

        Args:
            arrays: the file's arrays (every name of :attr:`array_names` present).
            dim: the header's declared embedding dimension.
            grid: the header's declared ``(h, w)`` patch grid.
            config: the ``AnomalyConfig`` (run-time settings such as the reweighting).

        Raises:
            ModelError: an array of another dtype or shape than declared (naming it).
        """


def check_float32(arrays: Mapping[str, np.ndarray], name: str,
                  shape: tuple[int | None, ...]) -> np.ndarray:
    """``arrays[name]`` if it is a finite float32 array of ``shape`` (None = any >= 1).

    Raises:
        ModelError: missing, another dtype or shape (naming the declared one), NaN/inf.
    """
    if name not in arrays:
        raise ModelError(f'array {name!r} is missing')
    value = arrays[name]
    if value.dtype != np.float32:
        raise ModelError(f'array {name!r} has dtype {value.dtype}, expected float32')
    want = '[' + ', '.join('N' if s is None else str(s) for s in shape) + ']'
    if value.ndim != len(shape) or any(
            (s is None and v < 1) or (s is not None and v != s)
            for v, s in zip(value.shape, shape, strict=True)):
        raise ModelError(f'array {name!r} has shape {list(value.shape)}, the header declares '
                         f'{want}')
    if not np.isfinite(value).all():
        raise ModelError(f'array {name!r} holds NaN or infinite values')
    return value


# -- PatchCore --------------------------------------------------------------------------------

class _PatchCoreFitter(MethodFitter):
    def __init__(self, config: Any) -> None:
        self._bank = MemoryBankBuilder(config.max_memory_bank, config.coreset_ratio,
                                       config.coreset_projection_dim, config.seed)
        self._model_args = _model_args(config)
        self._sources = np.empty(0, np.int64)

    def add(self, grid: np.ndarray, valid: np.ndarray, source: int) -> None:
        self._bank.add(grid[valid], source)

    def build(self) -> PatchCoreModel:
        model, self._sources = self._bank.build(**self._model_args)
        return model

    def without(self, model: MethodModel, sources: Sequence[int],
                grids: Sequence[np.ndarray]) -> MethodModel:
        """The bank rows that came from other images (slightly conservative: the bank was
        selected with these images in it)."""
        drop = np.isin(self._sources, list(sources))
        if not isinstance(model, PatchCoreModel) or len(drop) != model.size or drop.all():
            return model  # not this fit's bank, or nothing would be left: score with it all
        return model.without_rows(drop)


def _model_args(config: Any) -> dict[str, Any]:
    """The run-time settings of a :class:`PatchCoreModel` from an ``AnomalyConfig``."""
    return {'neighbors': int(config.reweight_neighbors), 'search': config.search,
            'ef_search': int(config.search_ef), 'exact_top': int(config.search_exact_top),
            'threads': int(config.threads)}


class PatchCore(AnomalyMethod):
    """Memory bank of normal patches (greedy coreset), nearest-neighbour distance
    (:mod:`.patchcore`)."""

    name = 'patchcore'
    description = 'memory bank + nearest neighbour; any content'
    default_dim = 64
    array_names = ('memory_bank',)
    size_unit = 'memory bank rows'

    def fitter(self, config: Any) -> MethodFitter:
        return _PatchCoreFitter(config)

    def from_arrays(self, arrays: Mapping[str, np.ndarray], dim: int,
                    grid: tuple[int, int], config: Any) -> MethodModel:
        return PatchCoreModel(check_float32(arrays, 'memory_bank', (None, dim)),
                              **_model_args(config))


# -- PaDiM ------------------------------------------------------------------------------------

class _PadimFitter(MethodFitter):
    def __init__(self, config: Any) -> None:
        self._acc = PadimAccumulator(config.padim_regularization)

    def add(self, grid: np.ndarray, valid: np.ndarray, source: int) -> None:
        self._acc.add(grid)

    def build(self) -> PadimModel:
        return self._acc.build()

    def without(self, model: MethodModel, sources: Sequence[int],
                grids: Sequence[np.ndarray]) -> MethodModel:
        return self._acc.build(without=list(grids))


class Padim(AnomalyMethod):
    """One Gaussian per patch position, Mahalanobis distance (:mod:`.padim`)."""

    name = 'padim'
    description = 'Gaussian per position; aligned views only'
    default_dim = 100
    array_names = ('mean', 'precision')
    size_unit = 'grid cells'

    def fitter(self, config: Any) -> MethodFitter:
        return _PadimFitter(config)

    def from_arrays(self, arrays: Mapping[str, np.ndarray], dim: int,
                    grid: tuple[int, int], config: Any) -> MethodModel:
        h, w = grid
        return PadimModel(check_float32(arrays, 'mean', (h, w, dim)),
                          check_float32(arrays, 'precision', (h, w, dim, dim)))


#: method name -> method object.
METHODS: dict[str, AnomalyMethod] = {m.name: m for m in (PatchCore(), Padim())}


def get_method(name: str) -> AnomalyMethod:
    """The method called ``name``.

    Raises:
        ConfigError: ``Invalid anomaly method 'x', expecting one of [...]``.
    """
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ConfigError(f'Invalid anomaly method {name!r}, expecting one of '
                          f'{list(METHODS)}') from None
