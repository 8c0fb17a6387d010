"""The shipped Foxglove layout: up to date with its generator, and every topic and message path
it names exists (the ROS tab's on the suite's topics and message types, the no-ROS tab's on the
channels foxglove_node's server really advertises)."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = ROOT / 'config' / 'foxglove' / 'edge_vision.json'
NAMESPACE = '/camera0'  # detect.launch.py's default namespace


def _panels(item: dict) -> list[tuple[str, dict]]:
    """``[(tab title, panel)]`` of a layout's content tree."""
    out = []

    def walk(node: dict, tab: str) -> None:
        if node.get('type') == 'tabs':
            for t in node['tabs']:
                walk(t['content'], t['title'])
        elif node.get('type') == 'split':
            for child in node['items']:
                walk(child['content'], tab)
        elif node.get('type') == 'panel':
            out.append((tab, node))

    walk(item['content'], '')
    return out


def _field_path_exists(type_name: str, path: str) -> bool:
    """``detections`` or ``status[0].values`` names fields of ``type_name``'s message class."""
    package, _, name = type_name.split('/')
    cls = getattr(importlib.import_module(f'{package}.msg'), name)
    for part in path.split('.'):
        field = re.sub(r'\[\d+\]$', '', part)
        fields = cls.get_fields_and_field_types()
        if field not in fields:
            return False
        kind = fields[field]
        inner = re.sub(r'^sequence<(.*)>$', r'\1', kind).split('[')[0]
        if part.endswith(']') and inner == kind and '[' not in kind:
            return False  # indexed, but not a sequence or array
        if '/' in inner:
            pkg, msg = inner.split('/')
            cls = getattr(importlib.import_module(f'{pkg}.msg'), msg)
    return True


def test_the_layout_file_is_what_the_generator_writes(tmp_path):
    pytest.importorskip('foxglove.layouts')
    out = tmp_path / 'layout.json'
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / 'foxglove' / 'make_layout.py'),
                           '--out', str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text()) == json.loads(LAYOUT.read_text()), \
        'config/foxglove/edge_vision.json is stale: run tools/foxglove/make_layout.py'


def test_the_ros_tab_names_the_suites_topics_and_fields():
    pytest.importorskip('rclpy')
    from edge_vision.bag_recording import TOPIC_TYPES

    types = {name: type_name for name, (type_name, _) in TOPIC_TYPES.items()}
    types['image_annotated'] = 'sensor_msgs/msg/Image'  # overlay_node's output
    panels = [p for tab, p in _panels(json.loads(LAYOUT.read_text())) if 'ROS' in tab]
    kinds = {p['panelType'] for p in panels}
    assert {'Image', 'RawMessages', 'Plot', 'DiagnosticsSummary'} <= kinds
    checked = 0
    for panel in panels:
        config = panel['config']
        paths = [config['topicPath']] if 'topicPath' in config else \
            [s['value'] for s in config.get('paths', [])]
        image = config.get('imageMode', {}).get('imageTopic')
        if image:
            paths.append(image)
        for full in paths:
            assert full.startswith(f'{NAMESPACE}/'), full
            topic = full[len(NAMESPACE) + 1:]
            name, _, fields = topic.partition('.')
            assert name in types, f'{full}: no topic {name!r} in the suite'
            assert not fields or _field_path_exists(types[name], fields), \
                f'{full}: {types[name]} has no {fields}'
            checked += 1
    assert checked >= 4


def test_the_no_ros_tab_uses_the_channels_foxglove_node_serves():
    pytest.importorskip('foxglove')
    from edge_vision_core.web.foxglove_live import FoxgloveLive

    panels = [p for tab, p in _panels(json.loads(LAYOUT.read_text())) if 'ROS' not in tab]
    assert panels
    mode = panels[0]['config']['imageMode']
    live = FoxgloveLive('127.0.0.1', 0)  # foxglove_node's defaults: /image and /tracks
    try:
        served = set(live.topics)
    finally:
        live.close()
    assert {mode['imageTopic'], *mode['annotations']} == served
