"""The bounded on-disk outbox of the MQTT bridge (store-and-forward), on SQLite.

Durable messages (events, snapshots, command replies) are written here *before* they are
handed to the MQTT client and deleted only when the broker has acknowledged them (QoS 1
PUBACK). So a broker outage, a dropped network or a restart of the node loses nothing: the
rows are sent, oldest first, once the link is back. The same file keeps the per-channel
sequence counters (so ``seq`` keeps increasing across restarts) and the store's ``epoch``, a
random id made when the file is created: a consumer keys its duplicate filter on
``(device, camera, epoch, seq)``, so a device whose store was wiped starts a new sequence
instead of being mistaken for a replay.

Bounds: at most ``max_messages`` rows and ``max_bytes`` of payload; when a new row does not
fit, the oldest rows are deleted and counted (``dropped``; ``take_unreported_drops`` gives the
count not reported yet, which the bridge sends as a ``messages_dropped`` event once the link is
back).

Durability: WAL journal with ``synchronous=NORMAL``: a committed row survives the process being
killed (``kill -9``); a power cut may lose the last commits (use ``synchronous=FULL`` by passing
``durable=True`` where that matters more than write speed). A file that is not a valid store
(corrupt, another program's) is moved aside to ``<name>.corrupt-<unix time>`` and a new one
is started; :attr:`OutboundStore.notes` says so, for the node's log.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

__all__ = ['OutboundStore', 'StoredMessage']

_FORMAT = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class StoredMessage:
    """One outbox row."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class OutboundStore:
    """A bounded, persistent FIFO of MQTT messages plus sequence counters (thread-safe).

    Args:
        path: the SQLite file (its folder is created); ``:memory:`` for a store that does not
            survive the process (tests of other parts).
        max_messages: most rows kept.
        max_bytes: most payload bytes kept.
        durable: ``synchronous=FULL`` (survives power loss) instead of NORMAL.

    Raises:
        ConfigError: the folder cannot be created or the file cannot be opened for writing.
    """

    def __init__(self, path: str | Path, max_messages: int = 10000,
                 max_bytes: int = 50 * 1024 * 1024, durable: bool = False) -> None:
        if max_messages < 1 or max_bytes < 1:
            raise ConfigError(f'OutboundStore needs max_messages and max_bytes >= 1, got '
                              f'{max_messages} and {max_bytes}')
        self.path = str(path)
        self.max_messages = int(max_messages)
        self.max_bytes = int(max_bytes)
        self.notes: list[str] = []
        self._lock = threading.Lock()
        self._db = self._open(durable)
        self.epoch = self._meta_value('epoch', lambda: secrets.token_hex(4))
        row = self._db.execute('SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) '
                               'FROM outbox').fetchone()
        self._count, self._bytes = int(row[0]), int(row[1])
        self.newest_id = int(self._db.execute('SELECT COALESCE(MAX(id), 0) FROM outbox'
                                              ).fetchone()[0])

    # -- opening ---------------------------------------------------------------------------

    def _open(self, durable: bool) -> sqlite3.Connection:
        if self.path != ':memory:':
            folder = Path(self.path).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f'cannot create the folder of the MQTT store {self.path}: '
                                  f'{exc}; set store_path to a writable file') from None
        try:
            return self._connect(durable)
        except sqlite3.OperationalError as exc:  # permissions, a read-only disk, a lock
            raise ConfigError(f'cannot open the MQTT store {self.path}: {exc}; set '
                              f'store_path to a writable file') from None
        except sqlite3.DatabaseError as exc:  # not a database, malformed, another format
            if self.path == ':memory:':
                raise
            aside = f'{self.path}.corrupt-{int(time.time())}'
            Path(self.path).rename(aside)
            for suffix in ('-wal', '-shm'):
                Path(self.path + suffix).unlink(missing_ok=True)
            self.notes.append(f'the MQTT store {self.path} was not a valid store ({exc}): moved '
                              f'to {aside}, started a new one')
            return self._connect(durable)

    def _connect(self, durable: bool) -> sqlite3.Connection:
        db = sqlite3.connect(str(Path(self.path).expanduser()) if self.path != ':memory:'
                             else ':memory:', check_same_thread=False, isolation_level=None)
        try:
            version = db.execute('PRAGMA user_version').fetchone()[0]
            if version not in (0, _FORMAT):
                raise sqlite3.DatabaseError(f'store format {version}, this version reads '
                                            f'{_FORMAT}')
            db.execute('PRAGMA journal_mode=WAL')
            db.execute(f'PRAGMA synchronous={"FULL" if durable else "NORMAL"}')
            db.executescript(_SCHEMA)
            db.execute(f'PRAGMA user_version={_FORMAT}')
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _meta_value(self, key: str, default: Callable[[], str]) -> str:
        with self._lock:
            row = self._db.execute('SELECT value FROM meta WHERE key=?', (key,)).fetchone()
            if row is not None:
                return str(row[0])
            value = default()
            self._db.execute('INSERT INTO meta(key, value) VALUES(?, ?)', (key, value))
            return value

    # -- writing ---------------------------------------------------------------------------

    def _bump(self, name: str, by: int = 1) -> int:
        self._db.execute('INSERT INTO counters(name, value) VALUES(?, ?) ON CONFLICT(name) '
                         'DO UPDATE SET value = value + excluded.value', (name, by))
        return int(self._db.execute('SELECT value FROM counters WHERE name=?',
                                    (name,)).fetchone()[0])

    def next_seq(self, counter: str) -> int:
        """Increment and return a persistent sequence counter (for messages not stored)."""
        with self._lock:
            return self._bump(f'seq:{counter}')

    def put(self, topic: str, build: Callable[[int], bytes], qos: int = 1,
            counter: str | None = None, retain: bool = False, evict: bool = True
            ) -> tuple[int, int]:
        """Append one message, atomically with its sequence number.

        Args:
            topic: MQTT topic.
            build: makes the payload from the sequence number (``counter``'s next value, or 0
                without a counter).
            qos: MQTT QoS to publish it with.
            counter: the sequence counter to advance (e.g. the channel name).
            retain: publish with the retain flag.
            evict: make room by dropping the oldest rows; False lets the store go over its
                bounds by this one message (the report of earlier drops must not cause more).

        Returns:
            ``(seq, dropped)``: the message's sequence number and how many old rows were
            deleted to make room (0 normally).
        """
        with self._lock:
            self._db.execute('BEGIN IMMEDIATE')
            try:
                seq = self._bump(f'seq:{counter}') if counter else 0
                payload = build(seq)
                if len(payload) > self.max_bytes:
                    raise ConfigError(f'a message of {len(payload)} bytes is larger than the '
                                      f'whole store ({self.max_bytes} bytes)')
                dropped = self._make_room(len(payload)) if evict else 0
                cursor = self._db.execute(
                    'INSERT INTO outbox(topic, payload, qos, retain, created) '
                    'VALUES(?, ?, ?, ?, ?)', (topic, payload, int(qos), int(retain), time.time()))
                self._db.execute('COMMIT')
                self.newest_id = int(cursor.lastrowid)
            except BaseException:
                self._db.execute('ROLLBACK')
                raise
            self._count += 1
            self._bytes += len(payload)
            return seq, dropped

    def _make_room(self, size: int) -> int:
        dropped = 0
        while self._count + 1 > self.max_messages or self._bytes + size > self.max_bytes:
            excess = max(1, self._count + 1 - self.max_messages)
            rows = self._db.execute('SELECT id, LENGTH(payload) FROM outbox ORDER BY id '
                                    'LIMIT ?', (excess,)).fetchall()
            if not rows:
                break
            self._db.execute(f'DELETE FROM outbox WHERE id <= {int(rows[-1][0])}')
            self._count -= len(rows)
            self._bytes -= sum(int(r[1]) for r in rows)
            dropped += len(rows)
        if dropped:
            self._bump('dropped', dropped)
            self._bump('dropped_unreported', dropped)
        return dropped

    # -- sending ---------------------------------------------------------------------------

    def pending(self, after_id: int = 0, limit: int = 100) -> list[StoredMessage]:
        """The oldest rows with an id above ``after_id`` (at most ``limit``)."""
        with self._lock:
            rows = self._db.execute('SELECT id, topic, payload, qos, retain FROM outbox WHERE '
                                    'id > ? ORDER BY id LIMIT ?', (int(after_id), int(limit)))
            return [StoredMessage(int(r[0]), str(r[1]), bytes(r[2]), int(r[3]), bool(r[4]))
                    for r in rows.fetchall()]

    def ack(self, message_id: int) -> bool:
        """Delete a row the broker acknowledged; False when it was gone already (dropped)."""
        with self._lock:
            row = self._db.execute('SELECT LENGTH(payload) FROM outbox WHERE id=?',
                                   (int(message_id),)).fetchone()
            if row is None:
                return False
            self._db.execute('DELETE FROM outbox WHERE id=?', (int(message_id),))
            self._count -= 1
            self._bytes -= int(row[0])
            return True

    def take_unreported_drops(self) -> int:
        """Drops not reported yet, and mark them reported."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name='dropped_unreported'"
                                   ).fetchone()
            count = int(row[0]) if row else 0
            if count:
                self._db.execute("UPDATE counters SET value=0 WHERE name='dropped_unreported'")
            return count

    # -- state -----------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Rows waiting for the broker's acknowledgement."""
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        """Rows deleted to make room, over the store's whole life."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name='dropped'").fetchone()
            return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> OutboundStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
