"""Remote commands: parsing, authentication, replay protection and the allow-list.

A command is a JSON object published (QoS 1) on ``<root>/v1/<device>/<camera>/cmd``::

    {"id": "4f1c...", "cmd": "set_parameter", "ts": 1767225600.0,
     "args": {"node": "inference_node", "name": "score_threshold", "value": 0.4},
     "auth": {"alg": "hmac-sha256", "sig": "<hex>"}}

and answered on ``.../cmd/reply`` with ``{"id", "cmd", "ok", "error", "result"}``. The
:class:`CommandGate` decides, without any side effect, whether a command may run; every refusal
is a :class:`CommandError` carrying the text of the reply. Checks, in order:

1. size (``MAX_COMMAND_BYTES``), UTF-8 JSON object, field types;
2. **authentication**: an HMAC-SHA256 of the canonical command (below) with the device's
   command key. Why, on top of the broker's ACL: the ACL says which *connection* may publish on
   a topic, so anything that holds publish rights there (a fleet tool with a leaked password,
   a too-wide ACL pattern, a bridged broker or a cloud rule that republishes) can command the
   device. The signature says the command was made by a holder of this device's key, end to
   end through any number of brokers, and it covers the device and camera ids, so a command
   signed for one device cannot be replayed on another. Without a key the gate refuses every
   command unless ``require_signature`` is off (then the ACL is the only guard);
3. freshness: ``ts`` (Unix seconds, the sender's clock) within ``max_age_s`` of ours, and an id
   not seen recently (a stored or re-delivered command does not run twice or late);
4. the **allow-list**: the command type, and for ``set_parameter`` the ``node:parameter`` pair.

The canonical form signed is the UTF-8 JSON of ``{"args", "camera", "cmd", "device", "id",
"ts"}`` with sorted keys and no spaces (``json.dumps(..., sort_keys=True,
separators=(",", ":"))``); :func:`make_command` builds signed commands.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import math
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ConversionError, EdgeVisionError
from .schema import decode, encode

__all__ = ['COMMANDS', 'Command', 'CommandGate', 'CommandPolicy', 'CommandError',
           'load_key', 'make_command', 'parse_parameter_list', 'sign']

#: Every command type of schema v1 and what it does.
COMMANDS = {
    'ping': 'answer with the device time (checks the command path end to end)',
    'set_parameter': 'set a ROS parameter on a node of the pipeline (args: node, name, value)',
    'snapshot': 'publish a JPEG snapshot of the current image on .../snapshot',
    'learn_normal': "start the anomaly node's learn-normal mode",
    'stop_learning': "cancel the anomaly node's learn-normal mode",
}
MAX_COMMAND_BYTES = 16 * 1024
_NAME = re.compile(r'^/?[A-Za-z_][A-Za-z0-9_/]{0,127}$')
_PARAM = re.compile(r'^[A-Za-z_][A-Za-z0-9_.]{0,127}$')
_ID = re.compile(r'^[A-Za-z0-9_.:\-]{1,128}$')


class CommandError(EdgeVisionError):
    """A command was refused; ``str(exc)`` is the reply's error text.

    Attributes:
        command_id: the command's id when it could be read (for the reply), else None.
        cmd: its type when it could be read.
    """

    def __init__(self, message: str, command_id: str | None = None, cmd: str | None = None
                 ) -> None:
        super().__init__(message)
        self.command_id = command_id
        self.cmd = cmd


@dataclass(frozen=True)
class Command:
    """A command that passed every check of the gate."""

    id: str
    cmd: str
    args: dict[str, Any]
    ts: float


def parse_parameter_list(entries: Iterable[str]) -> frozenset[tuple[str, str]]:
    """``("inference_node:score_threshold", ...)`` -> ``{("inference_node", "score_threshold")}``.

    Raises:
        ConfigError: an entry that is not ``<node name>:<parameter name>``.
    """
    out = set()
    for entry in entries:
        node, sep, name = str(entry).partition(':')
        if not sep or not _NAME.match(node) or not _PARAM.match(name):
            raise ConfigError(f'allowed_parameters entry {entry!r} must be '
                              f'"<node name>:<parameter name>", e.g. '
                              f'"inference_node:score_threshold"')
        out.add((node, name))
    return frozenset(out)


def load_key(path: str) -> bytes:
    """The command key from a file (its bytes, surrounding whitespace removed).

    Raises:
        ConfigError: unreadable or shorter than 16 bytes.
    """
    try:
        key = Path(path).expanduser().read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f'cannot read command_key_file {path!r}: {exc.strerror or exc}'
                          ) from None
    if len(key) < 16:
        raise ConfigError(f'command_key_file {path!r} holds {len(key)} bytes: use at least 16 '
                          f'random bytes (e.g. `openssl rand -hex 32 > {path}`)')
    return key


def _canonical(device: str, camera: str, command_id: str, cmd: str, args: dict[str, Any],
               ts: float) -> bytes:
    import json

    body = {'args': args, 'camera': camera, 'cmd': cmd, 'device': device, 'id': command_id,
            'ts': ts}
    return json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=True,
                      allow_nan=False).encode('ascii')


def sign(key: bytes, device: str, camera: str, command_id: str, cmd: str,
         args: dict[str, Any], ts: float) -> str:
    """The hex HMAC-SHA256 of a command's canonical form."""
    return hmac.new(key, _canonical(device, camera, command_id, cmd, args, ts),
                    hashlib.sha256).hexdigest()


def make_command(device: str, camera: str, cmd: str, args: dict[str, Any] | None = None,
                 key: bytes | None = None, command_id: str | None = None,
                 ts: float | None = None) -> bytes:
    """The payload of a command for ``device``/``camera``, signed when ``key`` is given."""
    args = dict(args or {})
    command_id = command_id or uuid.uuid4().hex
    ts = round(time.time() if ts is None else ts, 6)
    payload: dict[str, Any] = {'id': command_id, 'cmd': cmd, 'args': args, 'ts': ts}
    if key is not None:
        payload['auth'] = {'alg': 'hmac-sha256',
                           'sig': sign(key, device, camera, command_id, cmd, args, ts)}
    return encode(payload)


@dataclass(frozen=True)
class CommandPolicy:
    """What the gate accepts.

    Attributes:
        allowed_commands: command types that may run (subset of :data:`COMMANDS`).
        allowed_parameters: ``(node, parameter)`` pairs ``set_parameter`` may change.
        key: the HMAC key, or None.
        require_signature: refuse commands without a valid signature (with no key: refuse all).
        max_age_s: how far ``ts`` may be from the device clock.
        remember: command ids kept for replay detection.
    """

    allowed_commands: frozenset[str] = frozenset()
    allowed_parameters: frozenset[tuple[str, str]] = frozenset()
    key: bytes | None = field(default=None, repr=False)
    require_signature: bool = True
    max_age_s: float = 60.0
    remember: int = 1000

    def __post_init__(self) -> None:
        unknown = sorted(set(self.allowed_commands) - set(COMMANDS))
        if unknown:
            raise ConfigError(f'Invalid command(s) {unknown} in allowed_commands, expecting '
                              f'some of {sorted(COMMANDS)}')


class CommandGate:
    """Checks commands for one device/camera (see the module docstring). Not thread-safe:
    call it from one thread (the MQTT network thread)."""

    def __init__(self, policy: CommandPolicy, device: str, camera: str) -> None:
        self.policy = policy
        self.device, self.camera = device, camera
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.accepted = 0
        self.refused = 0

    def check(self, payload: bytes, now: float | None = None) -> Command:
        """The command in ``payload`` if it may run.

        Raises:
            CommandError: with the reason, for the reply and the log.
        """
        try:
            command = self._check(payload, time.time() if now is None else now)
        except CommandError:
            self.refused += 1
            raise
        self.accepted += 1
        return command

    def _check(self, payload: bytes, now: float) -> Command:
        if len(payload) > MAX_COMMAND_BYTES:
            raise CommandError(f'malformed command: {len(payload)} bytes, more than '
                                 f'{MAX_COMMAND_BYTES}')
        try:
            obj = decode(payload, MAX_COMMAND_BYTES)
        except ConversionError as exc:
            raise CommandError(f'malformed command: {exc}') from None
        command_id = obj.get('id')
        if not isinstance(command_id, str) or not _ID.match(command_id):
            raise CommandError('malformed command: "id" must be a string of 1-128 letters, '
                                 'digits or "_.:-"')
        cmd, args, ts = obj.get('cmd'), obj.get('args', {}), obj.get('ts')
        if not isinstance(cmd, str):
            raise CommandError('malformed command: "cmd" must be a string', command_id)
        if not isinstance(args, dict):
            raise CommandError('malformed command: "args" must be an object', command_id, cmd)
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
            raise CommandError('malformed command: "ts" must be Unix seconds', command_id, cmd)
        self._authenticate(obj, command_id, cmd, args, float(ts))
        age = now - float(ts)
        if abs(age) > self.policy.max_age_s:
            raise CommandError(f'stale command: sent {age:+.1f} s from the device clock, more '
                                 f'than {self.policy.max_age_s:g} s (clocks in sync?)',
                                 command_id, cmd)
        if command_id in self._seen:
            raise CommandError(f'replayed command: id {command_id} was already received',
                                 command_id, cmd)
        self._seen[command_id] = None
        while len(self._seen) > self.policy.remember:
            self._seen.popitem(last=False)
        if cmd not in COMMANDS:
            raise CommandError(f'unknown command {cmd!r}, expecting one of '
                                 f'{sorted(self.policy.allowed_commands)}', command_id, cmd)
        if cmd not in self.policy.allowed_commands:
            raise CommandError(f'command {cmd!r} is not on the allow-list (allowed: '
                                 f'{sorted(self.policy.allowed_commands)})', command_id, cmd)
        if cmd == 'set_parameter':
            args = self._parameter_args(args, command_id)
        return Command(command_id, cmd, args, float(ts))

    def _authenticate(self, obj: dict[str, Any], command_id: str, cmd: str,
                      args: dict[str, Any], ts: float) -> None:
        policy = self.policy
        auth = obj.get('auth')
        if policy.key is None:
            if policy.require_signature:
                raise CommandError('commands are disabled on this device: no command key '
                                     '(set command_key_file)', command_id, cmd)
            return
        if auth is None and not policy.require_signature:
            return
        sig = auth.get('sig') if isinstance(auth, dict) else None
        if not isinstance(sig, str) or auth.get('alg') != 'hmac-sha256':
            raise CommandError('unauthenticated command: "auth" must be {"alg": '
                                 '"hmac-sha256", "sig": "<hex>"}', command_id, cmd)
        try:
            expected = sign(policy.key, self.device, self.camera, command_id, cmd, args, ts)
        except ValueError:  # a NaN inside args: cannot be canonical JSON
            expected = ''
        if not hmac.compare_digest(expected, sig.lower()):
            raise CommandError('forged command: the signature does not verify with this '
                                 'device\'s key', command_id, cmd)

    def _parameter_args(self, args: dict[str, Any], command_id: str) -> dict[str, Any]:
        node, name, value = args.get('node'), args.get('name'), args.get('value')
        if not isinstance(node, str) or not isinstance(name, str) or 'value' not in args:
            raise CommandError('set_parameter needs args {"node": str, "name": str, '
                                 '"value": ...}', command_id, 'set_parameter')
        if (node, name) not in self.policy.allowed_parameters:
            allowed = sorted(f'{n}:{p}' for n, p in self.policy.allowed_parameters)
            raise CommandError(f'parameter {node}:{name} is not on the allow-list '
                                 f'(allowed: {allowed})', command_id, 'set_parameter')
        if not _valid_value(value):
            raise CommandError(f'set_parameter value {value!r} must be a finite bool, number '
                                 f'or string, or a non-empty list of one of them', command_id,
                                 'set_parameter')
        return {'node': node, 'name': name, 'value': value}


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, (int, float)):
        return 'number' if math.isfinite(value) else None
    return 'str' if isinstance(value, str) else None


def _valid_value(value: Any) -> bool:
    """A ROS parameter value: a finite scalar, or a non-empty list of scalars of one kind."""
    if isinstance(value, list):
        kinds = {_kind(v) for v in value}
        return len(kinds) == 1 and None not in kinds
    return _kind(value) is not None
