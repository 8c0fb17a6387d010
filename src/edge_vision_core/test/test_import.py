"""edge_vision_core is ROS-free and has no import-time side effects."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_core_never_imports_rclpy_or_runtimes():
    code = ('import sys, edge_vision_core, edge_vision_core.encodings, edge_vision_core.camera;'
            'bad = [m for m in ("rclpy", "onnxruntime", "openvino", "ai_edge_litert", "torch")'
            ' if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_error_derives_from_the_one_root():
    import edge_vision_core as core
    for name in ('ConfigError', 'ConversionError', 'CalibrationError', 'SourceError',
                 'ModelError', 'BackendError'):
        assert issubclass(getattr(core, name), core.EdgeVisionError)
    assert issubclass(core.ConfigError, ValueError)
