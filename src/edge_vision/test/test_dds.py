"""Transport defaults: set only what the user has not configured."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

import pytest

from edge_vision.dds import apply_transport_defaults, large_frames_profile, ros_distro


def test_profile_file_ships_with_the_package():
    text = Path(large_frames_profile()).read_text()
    assert '<segment_size>16777216</segment_size>' in text


def test_kilted_gets_the_fast_dds_3_variable():
    env = {'ROS_DISTRO': 'kilted'}
    note = apply_transport_defaults(env)
    assert env == {'ROS_DISTRO': 'kilted', 'FASTDDS_DEFAULT_PROFILES_FILE': large_frames_profile()}
    assert 'large-frame profile' in note


def _fast_dds_libraries() -> list[Path]:
    """The Fast DDS libraries of this environment: a venv of wheels or a sourced install."""
    prefixes = [Path(sys.prefix)] + [
        Path(p) for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    return [lib for prefix in prefixes for pattern in ('libfastrtps.so*', 'libfastdds.so*')
            for lib in sorted((prefix / 'lib').glob(pattern))]


def test_the_installed_fast_dds_reads_the_variable_set():
    """The variable chosen here is one the Fast DDS library of this environment reads (the
    Jazzy wheels, with no ROS_DISTRO, were once given the 3.x name their 2.14 ignores)."""
    libraries = _fast_dds_libraries()
    if not libraries:
        pytest.skip('no Fast DDS library found in this environment')
    env = {'ROS_DISTRO': os.environ['ROS_DISTRO']} if os.environ.get('ROS_DISTRO') else {}
    apply_transport_defaults(env)
    (chosen,) = [k for k in env if k.endswith('_DEFAULT_PROFILES_FILE')]
    assert chosen.encode() in libraries[0].read_bytes(), (chosen, libraries[0])


def test_humble_and_jazzy_get_the_fast_dds_2_variable():
    for distro in ('humble', 'jazzy'):
        env = {'ROS_DISTRO': distro}
        apply_transport_defaults(env)
        assert env['FASTRTPS_DEFAULT_PROFILES_FILE'] == large_frames_profile()
        assert 'FASTDDS_DEFAULT_PROFILES_FILE' not in env


def test_user_choices_are_kept():
    for var in ('FASTDDS_BUILTIN_TRANSPORTS', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                'FASTDDS_DEFAULT_PROFILES_FILE'):
        env = {var: 'mine'}
        assert 'kept as configured' in apply_transport_defaults(env)
        assert env == {var: 'mine'}
    env = {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}
    apply_transport_defaults(env)
    assert env == {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}
    env = {'EDGE_VISION_DDS_DEFAULTS': '0'}
    apply_transport_defaults(env)
    assert env == {'EDGE_VISION_DDS_DEFAULTS': '0'}


def test_the_distro_is_the_sourced_one_else_the_wheels_one():
    assert ros_distro({'ROS_DISTRO': 'humble'}) == 'humble'
    wheels = ros_distro({})
    if importlib.util.find_spec('rclpy') is not None and not os.environ.get('ROS_DISTRO'):
        # a venv of PyPI wheels (make setup): rclpy 7.x is Jazzy's, 9.x Kilted's
        major = importlib.metadata.version('rclpy').split('.')[0]
        assert wheels == {'7': 'jazzy', '9': 'kilted'}[major]
