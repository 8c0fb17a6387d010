"""Which stages a pipeline runs and how they are wired when some are left out.

One rule for every way of starting the graph (``detect.launch.py``, the ``pipeline`` executable,
``edge-vision run``). It imports no node, so launch files can use it cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ['remap_args', 'select_stages', 'stage_remaps']


def select_stages(preprocess: bool = True, tracking: bool = True, anomaly: bool = False,
                  recorder: bool = False, mqtt: bool = False, ocr: bool = False,
                  privacy: bool = False) -> list[str]:
    """The detection pipeline's stages: camera, [preprocess], inference, [tracker],
    [privacy], overlay, then the optional [recorder], [anomaly], [ocr] and [mqtt_bridge]."""
    stages = ['camera']
    if preprocess:
        stages.append('preprocess')
    stages.append('inference')
    if tracking:
        stages.append('tracker')
    if privacy:
        stages.append('privacy')
    stages.append('overlay')
    if recorder:
        stages.append('recorder')
    if anomaly:
        stages.append('anomaly')
    if ocr:
        stages.append('ocr')
    if mqtt:
        stages.append('mqtt_bridge')
    return stages


def stage_remaps(stages: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Per stage, the ``(from, to)`` topic remaps that make consumers of a missing stage read
    what feeds it: no preprocess -> ``image`` (and its ``image/camera_info``) is ``image_raw``
    (``camera_info``) for every stage that reads images (the tracker too: camera-motion
    compensation and the frames it passes on); no tracker -> ``tracks`` is ``detections``;
    privacy -> the stages whose images leave the device (overlay, hence ``image_annotated``,
    the recorder's video and the web view; the recorder's bag images; the MQTT bridge's
    snapshots; foxglove) read its ``image_private`` instead of ``image``/``image_raw``."""
    image = 'image' if 'preprocess' in stages else 'image_raw'
    results = 'tracks' if 'tracker' in stages else 'detections'
    remaps: dict[str, list[tuple[str, str]]] = {s: [] for s in stages}
    for stage in ('inference', 'tracker', 'privacy', 'overlay', 'anomaly', 'ocr', 'foxglove'):
        if stage in remaps and image != 'image':
            remaps[stage].append(('image', image))
    if 'overlay' in remaps and image != 'image':
        remaps['overlay'].append(('image/camera_info', 'camera_info'))
    for stage in ('overlay', 'recorder', 'mqtt_bridge', 'web', 'foxglove'):
        if stage in remaps and results != 'tracks':
            remaps[stage].append(('tracks', results))
    if 'privacy' in remaps:  # the stages whose images leave the device read the filtered ones
        for stage in ('overlay', 'recorder', 'mqtt_bridge', 'web', 'foxglove'):
            if stage in remaps:
                remaps[stage] = [r for r in remaps[stage] if r[0] not in ('image', 'image_raw')]
                remaps[stage] += [('image', 'image_private'), ('image_raw', 'image_private')]
    return remaps


def remap_args(remaps: Sequence[tuple[str, str]]) -> list[str]:
    """``--ros-args -r from:=to ...`` for a node's ``cli_args`` ([] without remaps)."""
    args = [arg for source, target in remaps for arg in ('-r', f'{source}:={target}')]
    return ['--ros-args', *args] if args else []
