"""camera_info YAML files and camera_info_url resolution (camera_info_manager rules)."""

from __future__ import annotations

import logging
import os
import stat

import numpy as np
import pytest
import yaml

from edge_vision_core import CalibrationError, CameraModel, RegionOfInterest
from edge_vision_core.calibration.info_file import (
    camera_info_from_yaml,
    camera_info_to_yaml,
    load_camera_info,
    resolve_camera_info_url,
    save_camera_info,
)


def make_model(distortion_model: str = 'plumb_bob', n: int = 5, seed: int = 0,
               **extra: object) -> CameraModel:
    rng = np.random.default_rng(seed)
    fx, fy = rng.uniform(300, 1500, 2)
    cx, cy = rng.uniform(200, 400, 2)
    D = rng.normal(0, 0.1, n) * 10.0 ** rng.integers(-7, 1, n)  # mixed magnitudes
    model = CameraModel.from_intrinsics(640, 480, fx, fy, cx, cy, D, distortion_model)
    P = model.P.copy()
    P[:, :3] *= rng.uniform(0.9, 1.0)
    P[2, 2] = 1.0
    return CameraModel(width=640, height=480, K=model.K, D=model.D,
                       R=np.linalg.qr(rng.normal(size=(3, 3)))[0], P=P,
                       distortion_model=distortion_model, **extra)


@pytest.mark.parametrize('model', [
    make_model('plumb_bob', 5),
    make_model('rational_polynomial', 8, seed=1),
    make_model('equidistant', 4, seed=2),
    make_model('plumb_bob', 5, seed=3, binning_x=2, binning_y=2,
               roi=RegionOfInterest(8, 4, 240, 320, True)),
    CameraModel.uncalibrated(1280, 720),
], ids=['plumb_bob', 'rational', 'fisheye', 'binning_roi', 'uncalibrated'])
@pytest.mark.parametrize('name', ['narrow_stereo', '0123', 'cam: left #1', ''])
def test_write_then_read_gives_the_same_values_bit_for_bit(tmp_path, model, name):
    path = tmp_path / 'camera.yaml'
    save_camera_info(path, model, name)
    loaded, loaded_name = load_camera_info(path)
    assert loaded_name == name
    assert loaded.allclose(model, atol=0.0)
    assert loaded.distortion_model == model.distortion_model
    assert loaded.D.shape == model.D.shape


def test_written_layout_is_the_camera_calibration_parsers_one(tmp_path):
    model = make_model()
    text = camera_info_to_yaml(model, 'cam0')
    keys = [line.split(':')[0] for line in text.splitlines() if not line.startswith(' ')]
    assert keys == ['image_width', 'image_height', 'camera_name', 'camera_matrix',
                    'distortion_model', 'distortion_coefficients', 'rectification_matrix',
                    'projection_matrix', 'binning_x', 'binning_y', 'roi']
    doc = yaml.safe_load(text)
    assert doc['camera_matrix']['rows'] == 3 and doc['camera_matrix']['cols'] == 3
    assert doc['distortion_coefficients'] == {'rows': 1, 'cols': 5,
                                              'data': model.D.tolist()}
    assert doc['projection_matrix']['cols'] == 4
    assert doc['projection_matrix']['data'] == model.P.ravel().tolist()
    assert doc['roi'] == {'x_offset': 0, 'y_offset': 0, 'height': 0, 'width': 0,
                          'do_rectify': False}
    assert '  data: [' in text  # flow-style lists, as yaml-cpp emits them


# The layout camera_info_manager's own tests and drivers ship (values are made up here).
CAMERA_INFO_MANAGER_LAYOUT = """\
image_width: 752
image_height: 480
camera_name: 00b09d0100a8c3e1
camera_matrix:
  rows: 3
  cols: 3
  data: [712.5, 0, 371.25, 0, 713.75, 233, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.3125, 0.125, 0.001, -0.0005, 0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [650.5, 0, 370, 0, 0, 660.25, 231.5, 0, 0, 0, 1, 0]
"""

# The layout ROS camera_calibration's "Save" writes (numpy-formatted, wrapped data rows).
CAMERA_CALIBRATION_LAYOUT = """\
image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [512.34567,   0.     , 320.5    ,
           0.     , 511.125  , 240.25   ,
           0.     ,   0.     ,   1.     ]
distortion_model: rational_polynomial
distortion_coefficients:
  rows: 1
  cols: 8
  data: [0.101000, -0.202000, 0.000300, -0.000400, 0.050000, 0.010000, 0.020000, 0.030000]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1., 0., 0.,
         0., 1., 0.,
         0., 0., 1.]
projection_matrix:
  rows: 3
  cols: 4
  data: [500.5  ,   0.   , 321.   ,   0.   ,
           0.   , 505.25 , 241.   ,   0.   ,
           0.   ,   0.   ,   1.   ,   0.   ]
"""


def test_reads_the_camera_info_manager_layout_with_optional_keys_missing(tmp_path):
    path = tmp_path / 'ost.yaml'
    path.write_text(CAMERA_INFO_MANAGER_LAYOUT)
    model, name = load_camera_info(path)
    assert name == '00b09d0100a8c3e1'
    assert (model.width, model.height) == (752, 480)
    assert (model.fx, model.fy, model.cx, model.cy) == (712.5, 713.75, 371.25, 233.0)
    np.testing.assert_array_equal(model.D, [-0.3125, 0.125, 0.001, -0.0005, 0])
    np.testing.assert_array_equal(model.R, np.eye(3))
    assert model.P[0, 0] == 650.5 and model.P[1, 2] == 231.5
    assert model.binning_x == 0 and model.roi == RegionOfInterest()


def test_reads_camera_calibrations_wrapped_numpy_layout(tmp_path):
    path = tmp_path / 'ost.yml'
    path.write_text(CAMERA_CALIBRATION_LAYOUT)
    model, name = load_camera_info(path)
    assert name == 'narrow_stereo'
    assert model.distortion_model == 'rational_polynomial' and model.D.size == 8
    assert model.fx == 512.34567 and model.cy == 240.25
    assert model.P[1, 1] == 505.25


def test_missing_name_and_model_get_camera_calibration_parsers_defaults(caplog):
    text = '\n'.join(line for line in CAMERA_INFO_MANAGER_LAYOUT.splitlines()
                     if not line.startswith(('camera_name', 'distortion_model')))
    with caplog.at_level(logging.WARNING):
        model, name = camera_info_from_yaml(text)
    assert name == 'unknown'
    assert model.distortion_model == 'plumb_bob'
    assert 'assuming plumb_bob' in caplog.text


def _edit(old: str, new: str) -> str:
    assert old in CAMERA_INFO_MANAGER_LAYOUT
    return CAMERA_INFO_MANAGER_LAYOUT.replace(old, new, 1)


@pytest.mark.parametrize('text, expected', [
    ('image_width: [640\n', 'not valid YAML'),
    ('- just\n- a list\n', 'expected a YAML mapping'),
    (_edit('image_width: 752\n', ''), "missing required key 'image_width'"),
    (_edit('projection_matrix:', 'projection:'), "missing required key 'projection_matrix'"),
    (_edit('  rows: 3\n  cols: 3\n  data: [712.5', '  rows: 2\n  cols: 3\n  data: [712.5'),
     'camera_matrix must be 3x3'),
    (_edit('0, 0, 1]\ndistortion_model', '0, 1]\ndistortion_model'),
     'camera_matrix.data has 8 values'),
    (_edit('cols: 5', 'cols: 4'), 'distortion_coefficients.data has 5 values'),
    (_edit('data: [1, 0, 0, 0, 1', 'data: [1, abc, 0, 0, 1'), 'not a finite number'),
    (_edit('distortion_model: plumb_bob', 'distortion_model: equidistant'),
     "'equidistant' takes 4"),
    (CAMERA_INFO_MANAGER_LAYOUT + 'roi: {x_offset: 0, width: 10}\n', 'roi must have'),
    (_edit('image_height: 480', 'image_height: -1'), 'image_height must be an integer'),
], ids=['syntax', 'not-mapping', 'no-width', 'no-P', 'K-rows', 'K-data', 'D-cols', 'nan',
        'wrong-D-size', 'roi', 'negative'])
def test_bad_files_raise_calibration_error_naming_file_and_problem(tmp_path, text, expected):
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    with pytest.raises(CalibrationError) as info:
        load_camera_info(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_and_ini_files_say_what_to_do(tmp_path):
    with pytest.raises(CalibrationError, match='does not exist; calibrate'):
        load_camera_info(tmp_path / 'none.yaml')
    ini = tmp_path / 'cam.ini'
    ini.write_text('[image]\nwidth\n640\n')
    with pytest.raises(CalibrationError, match='camera_calibration_parsers convert'):
        load_camera_info(ini)


def test_save_is_atomic_creates_folders_and_keeps_the_mode(tmp_path):
    path = tmp_path / 'a' / 'b' / 'camera.yaml'
    save_camera_info(path, make_model(), 'one')
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    os.chmod(path, 0o600)
    save_camera_info(path, make_model(seed=4), 'two')
    assert load_camera_info(path)[1] == 'two'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ['camera.yaml']  # no temp files


def test_save_into_an_unwritable_place_raises(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(CalibrationError, match='cannot write camera_info file'):
        save_camera_info(blocker / 'camera.yaml', make_model(), 'cam')


# --------------------------------------------------------------------------------------------
# URLs

ENV = {'ROS_HOME': '/data/ros', 'HOME': '/home/me'}


@pytest.mark.parametrize('url, env, expected', [
    ('file:///tmp/cam.yaml', ENV, '/tmp/cam.yaml'),
    ('FILE:///tmp/cam.yaml', ENV, '/tmp/cam.yaml'),
    ('file:///calib/${NAME}.yaml', ENV, '/calib/front.yaml'),
    ('file://${ROS_HOME}/x/${NAME}/${NAME}.yml', ENV, '/data/ros/x/front/front.yml'),
    ('file://${ROS_HOME}/c.yaml', {'HOME': '/home/me'}, '/home/me/.ros/c.yaml'),
    ('', ENV, '/data/ros/camera_info/front.yaml'),
    ('  ', {'HOME': '/home/me'}, '/home/me/.ros/camera_info/front.yaml'),
    ('file:///a$b/c.yaml', ENV, '/a$b/c.yaml'),
])
def test_url_resolution_follows_camera_info_manager(url, env, expected):
    assert str(resolve_camera_info_url(url, 'front', environ=env)) == expected


@pytest.mark.parametrize('url, expected', [
    ('http://example.com/cam.yaml', 'supported: file:///'),
    ('flash:///cam', 'supported: file:///'),
    ('/tmp/cam.yaml', 'supported: file:///'),
    ('file://relative/cam.yaml', 'absolute'),
    ('file:///x/${HOME}/cam.yaml', 'unknown substitution'),
    ('package://only_a_package', 'package://<package>/<path'),
    ('package:///cam.yaml', 'package://<package>/<path'),
])
def test_bad_urls_raise_with_the_supported_forms(url, expected):
    with pytest.raises(CalibrationError, match=expected.replace('$', r'\$')):
        resolve_camera_info_url(url, 'front', environ=ENV)


def test_package_urls_resolve_through_the_ament_index(tmp_path, monkeypatch):
    pytest.importorskip('ament_index_python')
    prefix = tmp_path / 'install'
    (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages').mkdir(parents=True)
    (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'my_robot').touch()
    (prefix / 'share' / 'my_robot' / 'calibration').mkdir(parents=True)
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    path = resolve_camera_info_url('package://my_robot/calibration/${NAME}.yaml', 'front')
    assert path == prefix / 'share' / 'my_robot' / 'calibration' / 'front.yaml'
    with pytest.raises(CalibrationError, match="package 'other_robot' is not installed"):
        resolve_camera_info_url('package://other_robot/cam.yaml', 'front')
    monkeypatch.delenv('AMENT_PREFIX_PATH')
    with pytest.raises(CalibrationError, match='source your ROS 2 workspace'):
        resolve_camera_info_url('package://my_robot/cam.yaml', 'front')
