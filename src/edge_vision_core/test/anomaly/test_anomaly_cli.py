"""The anomaly-fit and eval-anomaly commands, through the edge-vision CLI entry point."""

from __future__ import annotations

import json

import pytest

from edge_vision_core.anomaly import load_model_file

cli = pytest.importorskip('edge_vision.cli')


def test_fit_then_evaluate_with_the_model_file(small_bench, tmp_path, capsys):
    model = tmp_path / 'brick.npz'
    assert cli.main(['anomaly-fit', '--normal', str(small_bench / 'brick' / 'train' / 'good'),
                     '--out', str(model), '--input-size', '128x128', '--max-bank', '1024',
                     '--false-alarm-rate', '0.05']) == 0
    out = capsys.readouterr().out
    assert 'fitted patchcore on 10 normal frames' in out and 'input 128x128' in out
    assert model.is_file() and str(model) in out
    assert cli.main(['eval-anomaly', '--data', str(small_bench / 'brick'), '--model',
                     str(model), '--json']) == 0
    result = json.loads(capsys.readouterr().out)
    brick = result['categories'][0]
    assert brick['category'] == 'brick' and brick['num_defect'] == 9
    assert brick['image_auroc'] >= 0.8 and brick['pixel_auroc'] >= 0.9
    assert {d['defect'] for d in brick['per_defect']} == {'scratch', 'hole', 'foreign'}


def test_evaluate_every_category_with_fitting(small_bench, tmp_path, capsys):
    heat = tmp_path / 'heat'
    assert cli.main(['eval-anomaly', '--data', str(small_bench), '--fit', '--backbone', 'none',
                     '--layers', 'color8,contrast8', '--background', '0.5',
                     '--input-size', '128x128',
                     '--heatmaps', str(heat), '--save-models', str(tmp_path)]) == 0
    table = capsys.readouterr().out
    for text in ('image AUROC', 'pixel AUROC', 'brick', 'coffee', 'ALL', 'MEAN', 'hole'):
        assert text in table
    assert (tmp_path / 'brick.npz').is_file() and (tmp_path / 'coffee.npz').is_file()
    header, _ = load_model_file(tmp_path / 'brick.npz')
    assert header.layers == ('color8', 'contrast8') and header.background_quantile == 0.5
    assert len(list((heat / 'coffee').rglob('*.png'))) == 15


@pytest.mark.parametrize('args, message', [
    (['--input-size', '160x160'], 'input size 128x128'),
    (['--backbone', 'none'], "uses 'none'"),
])
def test_a_model_that_does_not_fit_the_settings_is_a_clean_error(small_bench, tmp_path,
                                                                  capsys, args, message):
    model = tmp_path / 'm.npz'
    assert cli.main(['anomaly-fit', '--normal', str(small_bench / 'coffee' / 'train' / 'good'),
                     '--out', str(model), '--input-size', '128x128',
                     '--layers', 'stride8,color8']) == 0
    capsys.readouterr()
    assert cli.main(['eval-anomaly', '--data', str(small_bench / 'coffee'), '--model',
                     str(model), *args]) == 2
    err = capsys.readouterr().err
    assert 'edge-vision eval-anomaly: error:' in err and message in err
    assert 'Traceback' not in err


def test_bad_arguments(small_bench, tmp_path, capsys):
    assert cli.main(['anomaly-fit', '--normal', str(tmp_path / 'none'), '--out',
                     str(tmp_path / 'm.npz')]) == 2
    assert 'not found' in capsys.readouterr().err
    assert cli.main(['anomaly-fit', '--normal', str(tmp_path), '--out', str(tmp_path / 'm.npz'),
                     '--input-size', '128']) == 2
    assert '--input-size' in capsys.readouterr().err
    assert cli.main(['eval-anomaly', '--data', str(small_bench), '--model',
                     str(tmp_path / 'm.npz')]) == 2
    assert 'one category' in capsys.readouterr().err


def test_eval_anomaly_fits_and_scores_a_written_small_defect_benchmark(tmp_path, capsys):
    """An MVTec-layout folder from the small-defect generator, evaluated as a user would:
    ``edge-vision eval-anomaly --data DIR --fit --json`` with the default model."""
    from edge_vision_core.anomaly.small_defects import (
        SMALL_DEFECTS,
        SmallDefectConfig,
        make_small_defect_benchmark,
    )

    make_small_defect_benchmark(tmp_path, SmallDefectConfig(
        categories=('grass', 'text'), image_size=128, train_images=6, test_good_images=3,
        test_images_per_defect=2, seed=9))
    assert cli.main(['eval-anomaly', '--data', str(tmp_path), '--fit', '--json']) == 0
    result = json.loads(capsys.readouterr().out)
    assert [c['category'] for c in result['categories']] == ['grass', 'text']
    for category in result['categories']:
        assert category['num_train'] == 6 and category['num_defect'] == 2 * len(SMALL_DEFECTS)
        assert {d['defect'] for d in category['per_defect']} == set(SMALL_DEFECTS)
        assert 0.0 <= category['pro'] <= 1.0 and category['fit_seconds'] > 0
    for key in ('mean_image_auroc', 'mean_pixel_auroc', 'mean_pro'):
        assert 0.0 <= result[key] <= 1.0
    assert result['mean_pixel_auroc'] > 0.6  # well above chance even with six images
