#!/usr/bin/env python3
"""Write config/foxglove/edge_vision.json: the Foxglove layout for the suite's topics.

Built with the typed layout classes of the official foxglove-sdk (``foxglove.layouts``), so the
file follows Foxglove's layout format. Two tabs:

- "ROS (foxglove_bridge)": a distro with ``foxglove_bridge`` running, one camera in namespace
  ``/camera0`` (``detect.launch.py``): the annotated image, tracks, per-frame image quality,
  anomaly score, and the /diagnostics summary of every node;
- "edge-vision run --foxglove": the channels of ``foxglove_node`` in the no-ROS mode: the
  camera image with the tracks drawn by Foxglove from ``foxglove.ImageAnnotations``.

    .venv/bin/python tools/foxglove/make_layout.py [--namespace /camera0] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import foxglove.layouts as fl

ROOT = Path(__file__).resolve().parents[2]


def ros_tab(ns: str) -> fl.TabItem:
    image = fl.ImagePanel(title='annotated image', config=fl.ImageConfig(
        image_mode=fl.ImageModeConfig(image_topic=f'{ns}/image_annotated')))
    tracks = fl.RawMessagesPanel(title='tracks', config=fl.RawMessagesConfig(
        topic_path=f'{ns}/tracks.detections'))
    quality = fl.RawMessagesPanel(title='image quality', config=fl.RawMessagesConfig(
        topic_path=f'{ns}/quality.status[0].values'))
    anomaly = fl.PlotPanel(title='anomaly score', config=fl.PlotConfig(paths=[
        fl.PlotSeries(value=f'{ns}/anomaly.results[0].score', label='anomaly score')]))
    diagnostics = fl.DiagnosticsSummaryPanel(title='nodes (/diagnostics)')
    right = fl.SplitContainer(direction='column', items=[
        fl.SplitItem(content=tracks), fl.SplitItem(content=diagnostics),
        fl.SplitItem(content=quality), fl.SplitItem(content=anomaly)])
    return fl.TabItem(title='ROS (foxglove_bridge)', content=fl.SplitContainer(
        direction='row', items=[fl.SplitItem(content=image, proportion=2),
                                fl.SplitItem(content=right)]))


def sdk_tab() -> fl.TabItem:
    image = fl.ImagePanel(title='image + tracks', config=fl.ImageConfig(
        image_mode=fl.ImageModeConfig(
            image_topic='/image/compressed',
            annotations={'/tracks/annotations': fl.ImageAnnotationSettings(visible=True)})))
    return fl.TabItem(title='edge-vision run --foxglove', content=image)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--namespace', default='/camera0')
    parser.add_argument('--out', default=str(ROOT / 'config' / 'foxglove' / 'edge_vision.json'))
    args = parser.parse_args()
    layout = fl.Layout(content=fl.TabContainer(tabs=[ros_tab(args.namespace.rstrip('/')),
                                                     sdk_tab()]))
    text = json.dumps(json.loads(layout.to_json()), indent=1) + '\n'
    Path(args.out).write_text(text, encoding='utf-8')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
