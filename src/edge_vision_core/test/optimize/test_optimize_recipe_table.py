"""The recipe table: entries are well formed, lookups fail loudly, and recipes added from this
one file (a copy of the sized FP32 ONNX; one limited to the native size) run through
optimize_model: resizing, naming, the manifest with its provenance, verification, skipping."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge_vision_core.errors import ConfigError
from edge_vision_core.inference import Detector, load_manifest
from edge_vision_core.inference.manifest import FORMATS, sha256_file
from edge_vision_core.optimize import (
    RECIPES,
    OptimizeConfig,
    Recipe,
    RecipeJob,
    RecipeOutput,
    optimize_model,
    register_recipe,
)
from edge_vision_core.optimize.recipes import get_recipe

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

MODEL = 'nanodet-m-416'


@pytest.mark.parametrize('name', list(RECIPES))
def test_every_recipe_entry_is_well_formed(name):
    recipe = RECIPES[name]
    assert recipe.name == name and recipe.summary and recipe.modules and recipe.install
    assert recipe.format in FORMATS and recipe.source_format in FORMATS
    assert callable(recipe.make) and recipe.variant_tag(OptimizeConfig())
    assert sum(r.resizes for r in RECIPES.values()) == 1


def test_unknown_recipes_fail_loudly_listing_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown recipe 'int3', expecting one of "
                                          r"\['onnx-fp32', 'onnx-int8'"):
        get_recipe('int3')
    with pytest.raises(ConfigError, match=r"OptimizeConfig.recipes: unknown recipe 'int3'"):
        OptimizeConfig(recipes=('onnx-fp16', 'int3'))
    with pytest.raises(ValueError, match='already registered'):
        register_recipe(RECIPES['prune'])


def _copy(job: RecipeJob) -> RecipeOutput:
    """Test-only recipe: the sized FP32 ONNX, copied."""
    shutil.copyfile(job.sized_onnx, job.target)
    return RecipeOutput({'tool': 'shutil.copyfile', 'size': job.size})


@pytest.fixture
def test_recipes():
    added = [
        register_recipe(Recipe('onnx-copy', 'onnx', 'fp32', ('onnx',), 'onnx', False,
                               'test-only: a copy of the FP32 ONNX', _copy, by_default=False)),
        register_recipe(Recipe('native-copy', 'onnx', 'fp32', ('onnx',), 'onnx', False,
                               'test-only: a copy, native size only', _copy, by_default=False,
                               native_size_only='this test recipe keeps the source size')),
    ]
    yield added
    for recipe in added:
        RECIPES.pop(recipe.name)


def test_recipes_added_here_run_through_optimize_model(test_recipes, tmp_path):
    lines: list[str] = []
    made = optimize_model(MODEL, tmp_path, OptimizeConfig(
        recipes=('onnx-copy', 'native-copy'), sizes=(320,)), progress=lines.append)
    assert [m.name for m in made] == ['nanodet-m-320-onnx-fp32', 'nanodet-m-320-onnx-copy']
    sized, copy = (load_manifest(m.manifest) for m in made)
    assert copy.input_size == (320, 320) and copy.adapter == 'nanodet'
    assert copy.options == sized.options and copy.labels == sized.labels
    assert sha256_file(copy.files[0].path) == sha256_file(sized.files[0].path)
    record = copy.recipe
    assert record['recipe'] == 'onnx-copy' and record['settings']['size'] == 320
    assert record['source_file']['sha256'] == sized.files[0].sha256  # made from the sized file
    summary = json.loads((tmp_path / 'optimize_summary.json').read_text())
    assert summary['skipped'] == {
        'native-copy@320': 'this test recipe keeps the source size; native size only'}
    assert '[320] skipping native-copy: native size (416) only' in lines
    image = np.zeros((240, 320, 3), np.uint8)
    image[60:180, 100:220] = 200
    with Detector.create(model=str(copy.source)) as a, \
            Detector.create(model=str(sized.source)) as b:
        np.testing.assert_array_equal(a.detect(image).detections.boxes,
                                      b.detect(image).detections.boxes)
