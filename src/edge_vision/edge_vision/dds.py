"""DDS transport defaults that let camera-sized messages through.

With Fast DDS's default transports, a best-effort subscriber receives almost none of a VGA
image stream (the shared-memory segment is smaller than one frame): the classic silent
"no data". Every edge_vision entry point calls :func:`apply_transport_defaults` before
``rclpy.init()``; it changes nothing the user has configured:

- another RMW (Cyclone DDS, Zenoh...): nothing;
- Fast DDS with ``FASTDDS_BUILTIN_TRANSPORTS`` or a profiles file already set: nothing;
- otherwise Fast DDS gets the bundled ``fastdds_large_frames.xml`` profile (a 16 MB
  shared-memory segment plus UDPv4), which works from Humble's Fast DDS 2.6 to Kilted's 3.2.
  Fast DDS 2.x reads it from ``FASTRTPS_DEFAULT_PROFILES_FILE``, 3.x from
  ``FASTDDS_DEFAULT_PROFILES_FILE``; the distro is ``ROS_DISTRO`` in a sourced install and,
  in a venv of PyPI wheels (no ``ROS_DISTRO``), the one of the installed rclpy.

Measured with ``edge-vision doctor`` (VGA bgr8 at 30 Hz, 90 frames, reliable publisher,
best-effort subscriber, Fast DDS 3.2, two processes on 2 cores): default transports 40-69
frames delivered, ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` 34-82, this profile 90/90 in every
run. The Jazzy wheels' Fast DDS 2.14.5 (``doctor --seconds 1.5 --rate 20``, two CPU hogs
beside it): 7-15 of 30 frames without the profile, 30/30 with it in 5 of 5 runs.
Set ``EDGE_VISION_DDS_DEFAULTS=0`` to turn this off.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from importlib import resources

__all__ = ['apply_transport_defaults', 'large_frames_profile', 'ros_distro', 'wheels_distro']

# Fast DDS 2.x reads the first, 3.x the second (and warns that the first is deprecated).
_PROFILE_VARS = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')
# Distros that ship Fast DDS 2.x; later ones ship 3.x.
_FASTDDS2_DISTROS = ('foxy', 'galactic', 'humble', 'iron', 'jazzy')
# rclpy's major version in each ROS 2 distro (no ROS_DISTRO is set in a venv of PyPI wheels).
_RCLPY_DISTROS = {3: 'humble', 4: 'iron', 7: 'jazzy', 9: 'kilted'}


def wheels_distro(rclpy_version: str | None = None) -> str:
    """The ROS 2 distro of the rclpy wheels installed here (or of ``rclpy_version``)."""
    if rclpy_version is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            rclpy_version = version('rclpy')
        except PackageNotFoundError:
            return 'unknown distro'
    major = rclpy_version.split('.', 1)[0]
    name = _RCLPY_DISTROS.get(int(major)) if major.isdigit() else None
    return name or f'rclpy {rclpy_version}'


def ros_distro(environ: MutableMapping[str, str] | None = None) -> str:
    """The ROS 2 distro in use: ``ROS_DISTRO`` of a sourced install, else the one of the
    installed rclpy wheels ('' when neither is known)."""
    env = os.environ if environ is None else environ
    if env.get('ROS_DISTRO'):
        return env['ROS_DISTRO']
    name = wheels_distro()
    return name if name in _RCLPY_DISTROS.values() else ''


def large_frames_profile() -> str:
    """Path of the bundled Fast DDS profile for large frames."""
    return str(resources.files('edge_vision') / 'data' / 'fastdds_large_frames.xml')


def apply_transport_defaults(environ: MutableMapping[str, str] | None = None) -> str:
    """Set a transport default for large messages if the user chose none.

    Must run before ``rclpy.init()`` (Fast DDS reads the environment when the participant is
    created). Returns a one-line description of what was decided, for the node's log.
    """
    env = os.environ if environ is None else environ
    if env.get('EDGE_VISION_DDS_DEFAULTS', '1') == '0':
        return 'DDS transport defaults disabled (EDGE_VISION_DDS_DEFAULTS=0)'
    rmw = env.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    if 'fastrtps' not in rmw and 'fastdds' not in rmw:
        return f'{rmw}: transport left as configured'
    for var in ('FASTDDS_BUILTIN_TRANSPORTS', *_PROFILE_VARS):
        if env.get(var):
            return f'Fast DDS: {var}={env[var]} kept as configured'
    profile = large_frames_profile()
    # The Jazzy wheels' Fast DDS 2.14 reads only the 2.x variable: deciding by ROS_DISTRO alone
    # gave them the 3.x one, so they ran without the profile (lost VGA frames, 20 s lease).
    old = ros_distro(env).lower() in _FASTDDS2_DISTROS
    var = _PROFILE_VARS[0] if old else _PROFILE_VARS[1]
    env[var] = profile
    return f'Fast DDS: large-frame profile {var}={profile}'
