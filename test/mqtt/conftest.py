"""Real Mosquitto brokers for the bridge node tests: TLS with a private CA, password file and
the per-device ACL shipped in config/mosquitto/ (so the documented ACL is the one tested)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_vision_core.mqtt.broker import MosquittoBroker, find_tool, make_certificates

ACL = Path(__file__).resolve().parents[2] / 'config' / 'mosquitto' / 'edge_vision.acl'
USERS = {'testdev': 'testdev-secret', 'fleet': 'fleet-secret'}


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """``mqtt_broker(start=True)``: a private TLS broker with USERS and the shipped ACL."""
    if find_tool('mosquitto') is None or find_tool('openssl') is None:
        pytest.skip('needs the Eclipse Mosquitto broker and openssl: sudo apt install '
                    'mosquitto openssl')
    certs = make_certificates(tmp_path / 'pki', name='good')
    made: list[MosquittoBroker] = []

    def _make(start: bool = True) -> MosquittoBroker:
        b = MosquittoBroker(tmp_path / f'broker{len(made)}', users=USERS, acl=ACL.read_text(),
                            certificates=certs)
        made.append(b)
        return b.start() if start else b

    yield _make
    for b in made:
        b.stop()


@pytest.fixture
def secret(tmp_path: Path) -> Callable[[str, str | bytes], str]:
    """``secret(name, value)``: a chmod-600 file holding a password or key; its path."""

    def _write(name: str, value: str | bytes) -> str:
        path = tmp_path / 'secrets' / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(value.encode() if isinstance(value, str) else value)
        path.chmod(0o600)
        return str(path)

    return _write
