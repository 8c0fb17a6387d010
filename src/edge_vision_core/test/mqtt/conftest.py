"""Real Mosquitto brokers for the MQTT tests: a private CA, a TLS listener on a loopback port,
a password file and the per-device ACL; tests that need one skip where mosquitto is missing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_vision_core.mqtt.broker import (
    Certificates,
    MosquittoBroker,
    find_tool,
    make_certificates,
)

#: Users of the test brokers: two devices (user name = device id) and the fleet tool.
USERS = {'dev1': 'dev1-secret', 'dev2': 'dev2-secret', 'fleet': 'fleet-secret'}
ACL = """pattern write edge_vision/v1/%u/+/tracks
pattern write edge_vision/v1/%u/+/text
pattern write edge_vision/v1/%u/+/events
pattern write edge_vision/v1/%u/+/health
pattern write edge_vision/v1/%u/+/status
pattern write edge_vision/v1/%u/+/snapshot
pattern write edge_vision/v1/%u/+/cmd/reply
pattern read edge_vision/v1/%u/+/cmd
user fleet
topic read edge_vision/v1/#
topic write edge_vision/v1/+/+/cmd
"""


def needs_mosquitto() -> None:
    if find_tool('mosquitto') is None or find_tool('openssl') is None:
        pytest.skip('needs the Eclipse Mosquitto broker and openssl: sudo apt install '
                    'mosquitto openssl')


@pytest.fixture(scope='session')
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Certificates]:
    """Two private CAs: ``good`` signs the brokers' certificates, ``other`` does not."""
    needs_mosquitto()
    root = tmp_path_factory.mktemp('pki')
    return {'good': make_certificates(root / 'good', name='good'),
            'other': make_certificates(root / 'other', name='other')}


@pytest.fixture
def broker(tmp_path: Path, pki: dict[str, Certificates]
           ) -> Iterator[Callable[..., MosquittoBroker]]:
    """``broker(tls=True, users=USERS, acl=ACL, **kw)``: a started private broker, stopped
    (killed if need be) after the test."""
    started: list[MosquittoBroker] = []

    def _make(tls: bool = True, users: dict[str, str] | None = USERS, acl: str | None = ACL,
              **kwargs: object) -> MosquittoBroker:
        b = MosquittoBroker(tmp_path / f'broker{len(started)}', users=users, acl=acl,
                            certificates=pki['good'] if tls else None, **kwargs)
        started.append(b)
        return b.start()

    yield _make
    for b in started:
        b.stop()
