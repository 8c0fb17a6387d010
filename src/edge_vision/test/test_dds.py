"""Transport defaults: set only what the user has not configured."""

from __future__ import annotations

from pathlib import Path

from edge_vision.dds import apply_transport_defaults, large_frames_profile


def test_profile_file_ships_with_the_package():
    text = Path(large_frames_profile()).read_text()
    assert '<segment_size>16777216</segment_size>' in text


def test_kilted_wheels_get_the_fast_dds_3_variable():
    env: dict[str, str] = {}
    note = apply_transport_defaults(env)
    assert env == {'FASTDDS_DEFAULT_PROFILES_FILE': large_frames_profile()}
    assert 'large-frame profile' in note


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
