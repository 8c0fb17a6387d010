"""Injected faults (issue 14, "Tests to add" 2): a node killed with SIGKILL in a
separate-process graph, corrupt model files, a forged anomaly model holding a pickle.

The camera source faults (files deleted or cut while they play, folders emptied, a missing
V4L2 device, a stream that drops) are in test_camera_node.py.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


class Watcher:
    """/diagnostics and one results topic, seen from the test process."""

    def __init__(self, context, topic: str) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from vision_msgs.msg import Detection2DArray

        self.node = rclpy.create_node('fault_watcher', context=context)
        self.status: dict[str, object] = {}
        self.results: list = []
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._diag, 50)
        self.node.create_subscription(Detection2DArray, topic, self.results.append, 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def _diag(self, array) -> None:
        for status in array.status:
            self.status[status.name] = status

    def message(self, name: str) -> str:
        status = self.status.get(name)
        return status.message if status is not None else ''

    def spin_until(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def test_kill_9_of_inference_is_reported_and_the_graph_resumes(node_process, ros_context,
                                                               tmp_path):
    ns = '/kill9'
    watch = {'input_timeout_s': 1.5, 'diagnostics_period': 0.3}
    camera = node_process('edge_vision.camera_node', {
        'rate': 10.0, 'camera_info_url': f'file://{tmp_path}/c.yaml'}, ns)
    inference = node_process('edge_vision.inference_node', {'threads': 1, **watch}, ns,
                             remaps={'image': 'image_raw'})
    tracker = node_process('edge_vision.tracker_node', watch, ns)
    w = Watcher(ros_context, f'{ns}/tracks')
    try:
        assert w.spin_until(lambda: len(w.results) >= 5, 90), inference.output()[-2000:]
        inference.proc.kill()  # SIGKILL: no clean shutdown, its DDS endpoints linger
        inference.proc.wait()
        # the tracker says its input has no publisher once DDS notices the dead participant
        assert w.spin_until(lambda: f'no publisher on {ns}/detections' in w.message(
            f'{ns}/tracker_node'), 60), w.message(f'{ns}/tracker_node')
        assert w.status[f'{ns}/tracker_node'].level == bytes([1])  # WARN
        assert camera.alive() and tracker.alive(), 'the other nodes keep running'
        count = len(w.results)
        w.results.clear()
        restarted = node_process('edge_vision.inference_node', {'threads': 1, **watch}, ns,
                                 remaps={'image': 'image_raw'})
        assert w.spin_until(lambda: len(w.results) >= 5, 90), restarted.output()[-2000:]
        assert w.spin_until(lambda: 'no publisher' not in w.message(f'{ns}/tracker_node')
                            and 'nothing received' not in w.message(f'{ns}/tracker_node'), 20)
        stamps = [r.header.stamp.sec + r.header.stamp.nanosec * 1e-9 for r in w.results]
        assert stamps == sorted(stamps) and count >= 5
        assert camera.alive() and tracker.alive() and restarted.alive()
    finally:
        w.close()


def _nanodet() -> tuple[Path, dict]:
    import yaml

    from edge_vision_core.inference import resolve_model

    shipped = resolve_model('nanodet-m-416')
    data = yaml.safe_load(open(shipped.source))
    data.pop('files', None)
    data['file'] = str(shipped.files[0].path)
    return shipped.files[0].path, data


def _rank3_onnx(path: Path) -> None:
    """A valid ONNX model whose input has rank 3 (a detector needs NCHW/NHWC, rank 4)."""
    onnx = pytest.importorskip('onnx')
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node('ReduceMax', ['images'], ['peak'], keepdims=0),
             helper.make_node('Constant', [], ['zero'],
                              value=numpy_helper.from_array(np.zeros((1, 6, 20), np.float32))),
             helper.make_node('Add', ['zero', 'peak'], ['output0'])]
    graph = helper.make_graph(
        nodes, 'rank3', [helper.make_tensor_value_info('images', TensorProto.FLOAT,
                                                       [1, 32, 64])],
        [helper.make_tensor_value_info('output0', TensorProto.FLOAT, [1, 6, 20])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _corrupt_model(tmp_path: Path, kind: str) -> tuple[str, str]:
    """``(model parameter, text the configure error must contain)``."""
    import yaml

    onnx_path, manifest = _nanodet()
    manifest['sha256'] = ''  # reach the runtime, past the checksum
    target = tmp_path / 'model.onnx'
    if kind == 'truncated':
        target.write_bytes(onnx_path.read_bytes()[:len(onnx_path.read_bytes()) // 2])
        expected = 'model.onnx'
    elif kind == 'random':
        target.write_bytes(np.random.default_rng(0).bytes(200_000))
        expected = 'model.onnx'
    elif kind == 'rank3':
        _rank3_onnx(target)
        for key in ('reg_max', 'strides'):  # NanoDet's options, refused for YOLOv8
            manifest.pop(key, None)
        manifest.update(adapter='yolov8', labels=['a', 'b'], input_size=[64, 32])
        expected = 'rank 4'
    elif kind == 'labels':
        target.write_bytes(onnx_path.read_bytes())
        manifest['labels'] = manifest['labels'][:79]
        expected = '79 labels'
    else:  # a directory where the model file should be
        target.mkdir()
        expected = 'is a directory'
    manifest['file'] = str(target)
    (tmp_path / 'model.yaml').write_text(yaml.safe_dump(manifest))
    return str(tmp_path / 'model.yaml'), expected


@pytest.mark.parametrize('kind', ['truncated', 'random', 'rank3', 'labels', 'directory'])
def test_corrupt_model_fails_configure_clearly_and_the_node_stays_up(node_process, tmp_path,
                                                                     kind):
    model, expected = _corrupt_model(tmp_path, kind)
    proc = node_process('edge_vision.inference_node', {'model': model, 'warmup_runs': 1},
                        f'/corrupt_{kind}')
    out = proc.wait_for_output('configure failed', 60)
    assert 'configure failed' in out and expected in out, out[-2000:]
    assert 'Traceback' not in out
    time.sleep(1.0)
    assert proc.alive(), 'a bad model must not take the process down'
    assert proc.stop() == 0


class _Marker:
    """Unpickling this creates a file: proof that something unpickled it."""

    path = ''

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_forged_anomaly_model_is_never_unpickled(node_process, tmp_path):
    marker = tmp_path / 'unpickled'
    _Marker.path = str(marker)
    evil = np.empty(1, dtype=object)
    evil[0] = _Marker()
    forged = tmp_path / 'forged.npz'
    np.savez(forged, header=evil, bank=evil)  # np.save pickles object arrays
    assert b'unpickled' in forged.read_bytes()  # the payload really is in the file
    pickle.loads(pickle.dumps(_Marker()))  # and really would create the marker...
    assert marker.exists()
    marker.unlink()  # ...so it must not exist after the node read the file
    proc = node_process('edge_vision.anomaly_node', {'model_path': str(forged)},
                        '/anomaly_forged')
    out = proc.wait_for_output('configure failed', 60)
    assert 'configure failed' in out and 'forged.npz' in out, out[-2000:]
    time.sleep(1.0)
    assert not marker.exists(), 'the model file was unpickled'
    assert proc.alive()
    assert proc.stop() == 0
