"""Integration-test set-up: real rclpy on real DDS, isolated from other ROS 2 processes.

At import (before any rclpy.init) this picks a ROS_DOMAIN_ID of its own for the session and
restricts discovery to this machine, so parallel runs and a developer's own robot traffic do not
cross. Child processes started by tests inherit the same environment.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

os.environ['ROS_DOMAIN_ID'] = os.environ.get('EDGE_VISION_TEST_DOMAIN_ID',
                                             str(random.Random().randint(100, 200)))
if os.environ.get('ROS_DISTRO', '').lower() in ('humble', 'iron'):
    os.environ['ROS_LOCALHOST_ONLY'] = '1'
else:
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'

from edge_vision.dds import apply_transport_defaults

apply_transport_defaults()


@pytest.fixture
def ros_context() -> Iterator[object]:
    """An initialised rclpy Context, shut down after the test."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


@pytest.fixture
def spin_until() -> Callable[..., bool]:
    """``spin_until(executor, predicate, timeout)``: spin until predicate() or timeout."""

    def _spin(executor, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            executor.spin_once(timeout_sec=0.05)
        return predicate()

    return _spin


@pytest.fixture
def call_service(spin_until) -> Callable[..., object]:
    """``call_service(executor, client, request, attempts=3, timeout=10)``: the response of
    an idempotent service call, asked again when no answer came: a response can be lost when
    the server has not yet matched the client's response reader, although wait_for_service
    returned (seen with the Jazzy wheels' Fast DDS 2.14). None after every attempt."""

    def _call(executor, client, request, attempts: int = 3, timeout: float = 10.0):
        for _ in range(attempts):
            future = client.call_async(request)
            if spin_until(executor, future.done, timeout):
                return future.result()
            client.remove_pending_request(future)
        return None

    return _call


#: the state each lifecycle transition ends in (lifecycle_msgs' primary state labels)
_TRANSITION_GOALS = {'configure': 'inactive', 'activate': 'active', 'deactivate': 'inactive',
                     'cleanup': 'unconfigured', 'shutdown': 'finalized'}


@pytest.fixture
def change_state(spin_until, call_service) -> Callable[..., bool]:
    """``change_state(executor, node, node_name, label, timeout=20)``: drive a lifecycle
    transition (``configure``, ``activate``...) through ``node_name/change_state``, as ``ros2
    lifecycle set`` does; whether it succeeded. A transition is not idempotent, so it is asked
    once; when its answer is lost (call_service), the node's state says whether it happened."""

    def _change(executor, node, node_name: str, label: str, timeout: float = 20.0) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState, GetState

        client = node.create_client(ChangeState, f'{node_name}/change_state')
        state = node.create_client(GetState, f'{node_name}/get_state')
        try:
            assert client.wait_for_service(timeout_sec=30), f'no {node_name}/change_state'
            future = client.call_async(ChangeState.Request(
                transition=Transition(id=getattr(Transition, f'TRANSITION_{label.upper()}'))))
            if spin_until(executor, future.done, timeout):
                return future.result().success
            client.remove_pending_request(future)
            answer = call_service(executor, state, GetState.Request())
            return answer is not None and answer.current_state.label == _TRANSITION_GOALS[label]
        finally:
            node.destroy_client(client)
            node.destroy_client(state)

    return _change


class NodeProcess:
    """A node executable in its own process (what ``ros2 run`` does), stopped with SIGINT."""

    def __init__(self, module: str, params: dict[str, object], namespace: str,
                 extra_env: dict[str, str] | None = None, params_file: str | None = None,
                 remaps: dict[str, str] | None = None, prefix: tuple[str, ...] = ()) -> None:
        import subprocess
        import sys
        import tempfile

        # prefix: a command that runs the node, e.g. ('ip', 'netns', 'exec', 'ns1')
        args = [*prefix, sys.executable, '-m', module, '--ros-args', '-r',
                f'__ns:={namespace}']
        if params_file:
            args += ['--params-file', params_file]
        for old, new in (remaps or {}).items():
            args += ['-r', f'{old}:={new}']
        for key, value in params.items():
            if isinstance(value, bool):
                value = 'true' if value else 'false'
            args += ['-p', f'{key}:={value}']
        self.log = tempfile.NamedTemporaryFile('w+', suffix='.log', delete=False)
        env = dict(os.environ, **(extra_env or {}))
        env['PYTHONUNBUFFERED'] = '1'
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        with open(self.log.name) as f:
            return f.read()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_output(self, text: str, timeout: float = 30.0) -> str:
        """Wait until ``text`` appears in the node's output (or the timeout); the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and text not in self.output():
            time.sleep(0.2)
        return self.output()

    def stop(self, timeout: float = 15.0) -> int:
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -9
        return self.proc.returncode


@pytest.fixture
def node_process() -> Iterator[Callable[..., NodeProcess]]:
    """Start node executables as processes; each is stopped (SIGINT) after the test."""
    started: list[NodeProcess] = []

    def _start(module: str, params: dict[str, object] | None = None,
               namespace: str = '/test', extra_env: dict[str, str] | None = None,
               params_file: str | None = None, remaps: dict[str, str] | None = None,
               prefix: tuple[str, ...] = ()) -> NodeProcess:
        proc = NodeProcess(module, params or {}, namespace, extra_env, params_file, remaps,
                           prefix)
        started.append(proc)
        return proc

    yield _start
    for proc in started:
        proc.stop()


class Diagnostics:
    """The newest /diagnostics status of every node, as ``node`` (a test's own node) receives
    them; names are fully qualified (``/ns/tracker_node``)."""

    def __init__(self, node: object) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self.latest: dict[str, object] = {}
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_array, 50)

    def _on_array(self, array: object) -> None:
        for status in array.status:
            self.latest[status.name] = status

    def status(self, name: str) -> object | None:
        return self.latest.get(name)

    def value(self, name: str, key: str) -> str | None:
        status = self.latest.get(name)
        if status is None:
            return None
        return {kv.key: kv.value for kv in status.values}.get(key)


@pytest.fixture
def diagnostics() -> type[Diagnostics]:
    """``diagnostics(node)``: a :class:`Diagnostics` listener on a test's node."""
    return Diagnostics


@pytest.fixture
def publish_until() -> Callable[..., bool]:
    """``publish_until(executor, [(pub, msg), ...], predicate, timeout)``: publish every 0.2 s
    and spin until predicate(). The first samples after discovery can be lost (a subscriber
    may match the publisher after the publisher matched it), so tests that send a single
    message resend it until its effect shows."""

    def _run(executor, msgs, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pub, msg in msgs:
                pub.publish(msg)
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                if predicate():
                    return True
                executor.spin_once(timeout_sec=0.02)
        return predicate()

    return _run


@pytest.fixture
def constant_segmenter(tmp_path: Path) -> Callable[..., str]:
    """``constant_segmenter(labels, scores)``: a tiny ONNX segmentation model whose output is
    ``scores`` (float32, any shape: a class-score map, a class map, or a layout the adapter must
    refuse) whatever the image, with its manifest (``adapter: segmentation``, NCHW 64x64 input,
    ``labels``) in ``tmp_path``; returns the manifest's path."""

    def _make(labels: list[str], scores: object) -> str:
        import numpy as np

        onnx = pytest.importorskip('onnx')
        import yaml
        from onnx import TensorProto, helper, numpy_helper

        values = np.asarray(scores, np.float32)
        nodes = [  # the input feeds the output (times 0), so no runtime folds the model away
            helper.make_node('ReduceMax', ['images'], ['peak'], keepdims=0),
            helper.make_node('Constant', [], ['zero'],
                             value=numpy_helper.from_array(np.array(0.0, np.float32))),
            helper.make_node('Mul', ['peak', 'zero'], ['nothing']),
            helper.make_node('Constant', [], ['scores'], value=numpy_helper.from_array(values)),
            helper.make_node('Add', ['scores', 'nothing'], ['logits']),
        ]
        graph = helper.make_graph(
            nodes, 'constant_segmenter',
            [helper.make_tensor_value_info('images', TensorProto.FLOAT, [1, 3, 64, 64])],
            [helper.make_tensor_value_info('logits', TensorProto.FLOAT, list(values.shape))])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
        model.ir_version = 8
        onnx.save(model, str(tmp_path / 'seg.onnx'))
        manifest = {'name': 'seg', 'file': 'seg.onnx', 'layout': 'NCHW',
                    'input_size': [64, 64], 'adapter': 'segmentation', 'labels': list(labels)}
        (tmp_path / 'seg.yaml').write_text(yaml.safe_dump(manifest))
        return str(tmp_path / 'seg.yaml')

    return _make


def _load_setup_env() -> ModuleType:
    """``tools/setup_env.py`` as the module ``edge_vision_setup_env``, so that tests can import
    it (standard library only; importing it does nothing)."""
    name = 'edge_vision_setup_env'
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / 'tools' / 'setup_env.py'
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it executes
        spec.loader.exec_module(module)
    return sys.modules[name]


_load_setup_env()


@pytest.fixture
def system_program() -> Callable[..., str]:
    """``system_program('mosquitto')``, ``system_program('ip', package='iproute2')``: the path
    of a program that a Debian package installs, or skip the test naming the install command.

    The package must be listed in ``tools/requirements/apt.txt``, which ``make setup`` installs
    where it runs as root (as in CI): a test asking for an unlisted package fails, so that CI
    never relies on something installed by hand.
    """
    listed = _load_setup_env().debian_packages()

    def _find(program: str, package: str | None = None) -> str:
        package = package or program
        if package not in listed:
            pytest.fail(f'the Debian package {package} is not listed in '
                        'tools/requirements/apt.txt: add it there so that `make setup` '
                        'installs it (in CI too)')
        search = os.pathsep.join([os.environ.get('PATH', ''), '/usr/sbin', '/sbin'])
        path = shutil.which(program, path=search)
        if path is None:
            pytest.skip(f'needs `{program}` from the Debian package {package}, which is not '
                        'installed: `make setup` installs it when run as root, or run '
                        f'`sudo apt-get install --no-install-recommends {package}`')
        return path

    return _find
