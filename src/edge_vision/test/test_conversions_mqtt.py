"""The MQTT bridge's message conversions: anomaly confidence, image-quality level, remote
parameter values (without spinning a node)."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterType
from vision_msgs.msg import Classification, ObjectHypothesis

from edge_vision.conversions import (
    classification_score,
    diagnostic_level,
    meta_to_header,
    parameter_value,
    quality_from_msg,
    quality_to_status,
)
from edge_vision_core import ConversionError, FrameMeta


def test_the_anomaly_confidence_and_its_stamp_come_out_of_the_classification():
    meta = FrameMeta(12_500_000_000, 'cam0_optical_frame')
    msg = Classification(header=meta_to_header(meta), results=[
        ObjectHypothesis(class_id='normal', score=0.3),
        ObjectHypothesis(class_id='anomaly', score=0.7)])
    assert classification_score(msg) == (meta, pytest.approx(0.7))
    with pytest.raises(ConversionError, match="without a 'anomaly' hypothesis"):
        classification_score(Classification())


@pytest.mark.parametrize('gate_action, level', [('off', 0), ('flag', 1)])
def test_the_quality_level_is_read_back_from_what_preprocess_publishes(gate_action, level):
    from edge_vision_core.imaging import PreprocessConfig, Preprocessor

    dark = np.zeros((64, 64, 3), np.uint8)
    result = Preprocessor(PreprocessConfig(gate_action=gate_action)).process(dark, 'bgr8')
    meta = FrameMeta(5, 'cam')
    msg = DiagnosticArray(header=meta_to_header(meta),
                          status=[quality_to_status(result, '/pre: image quality', 'cam')])
    got_meta, got_level, summary = quality_from_msg(msg)
    assert (got_meta, got_level) == (meta, level)
    assert ('too_dark' in summary) == (level == 1)
    with pytest.raises(ConversionError, match='no status'):
        quality_from_msg(DiagnosticArray())
    assert diagnostic_level(b'\x02') == 2 and diagnostic_level(3) == 3


@pytest.mark.parametrize('value, ptype, attr, expected', [
    (0.4, ParameterType.PARAMETER_DOUBLE, 'double_value', 0.4),
    (1, ParameterType.PARAMETER_DOUBLE, 'double_value', 1.0),
    (3, ParameterType.PARAMETER_INTEGER, 'integer_value', 3),
    (True, ParameterType.PARAMETER_BOOL, 'bool_value', True),
    ('fp16', ParameterType.PARAMETER_STRING, 'string_value', 'fp16'),
    ([1, 2.5], ParameterType.PARAMETER_DOUBLE_ARRAY, 'double_array_value', [1.0, 2.5]),
    (['a'], ParameterType.PARAMETER_STRING_ARRAY, 'string_array_value', ['a']),
])
def test_remote_values_take_the_declared_parameter_type(value, ptype, attr, expected):
    msg = parameter_value(value, ptype)
    got = getattr(msg, attr)
    assert msg.type == ptype
    assert (list(got) if isinstance(expected, list) else got) == expected


@pytest.mark.parametrize('value, ptype, match', [
    (0.5, ParameterType.PARAMETER_NOT_SET, 'no such parameter'),
    (0.5, ParameterType.PARAMETER_INTEGER, 'does not fit'),
    (True, ParameterType.PARAMETER_INTEGER, 'does not fit'),
    (1, ParameterType.PARAMETER_BOOL, 'does not fit'),
    ('1', ParameterType.PARAMETER_DOUBLE, 'does not fit'),
    ([1, 2], ParameterType.PARAMETER_INTEGER, 'does not fit'),
    (1, ParameterType.PARAMETER_INTEGER_ARRAY, 'does not fit'),
])
def test_values_that_do_not_fit_the_parameter_are_refused(value, ptype, match):
    with pytest.raises(ConversionError, match=match):
        parameter_value(value, ptype)
