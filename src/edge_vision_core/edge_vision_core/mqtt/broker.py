"""A private Eclipse Mosquitto broker on a loopback port, for tests, benchmarks and trying the
bridge on a laptop: TLS with a generated CA, password file, ACL, persistence, and the faults a
test needs (``kill()`` is ``kill -9``; ``restart()`` comes back on the same port and data).

It runs the real ``mosquitto`` executable (Debian/Ubuntu: ``apt install mosquitto``); the
certificates come from the ``openssl`` command line and the password file from
``mosquitto_passwd``. Nothing here is used by the bridge itself.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

__all__ = ['Certificates', 'MosquittoBroker', 'find_tool', 'free_port', 'make_certificates']


def find_tool(name: str) -> str | None:
    """Path of a Mosquitto/OpenSSL executable (also looks in the sbin folders, which are not
    on a normal user's PATH)."""
    return shutil.which(name) or next(
        (str(p) for p in (Path('/usr/sbin') / name, Path('/usr/local/sbin') / name)
         if p.is_file() and os.access(p, os.X_OK)), None)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def _run(args: list[str], what: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ConfigError(f'{what} failed ({" ".join(args[:3])}...): {proc.stderr.strip()}')


@dataclass(frozen=True)
class Certificates:
    """PEM files of a private CA and the certificates it signed."""

    folder: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    def client(self, name: str) -> tuple[Path, Path]:
        """A client certificate ``CN=<name>`` signed by the CA: ``(cert, key)``."""
        return _issue(self.folder, name, self.ca_cert, self.ca_key, f'CN={name}', None)


def _issue(folder: Path, name: str, ca_cert: Path | None, ca_key: Path | None, subject: str,
           san: str | None, days: int = 3) -> tuple[Path, Path]:
    openssl = find_tool('openssl')
    if openssl is None:
        raise ConfigError('openssl is not installed (apt install openssl)')
    cert, key = folder / f'{name}.crt', folder / f'{name}.key'
    base = [openssl, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
            '-nodes', '-keyout', str(key), '-subj', f'/{subject}']
    if ca_cert is None:
        _run([*base, '-x509', '-days', str(days), '-out', str(cert), '-addext',
              'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'],
             'making a CA')
    else:
        csr = folder / f'{name}.csr'
        _run([*base, '-out', str(csr)], f'making the {name} key')
        ext = folder / f'{name}.ext'
        ext.write_text(f'subjectAltName={san}\n' if san else 'basicConstraints=CA:FALSE\n')
        _run([openssl, 'x509', '-req', '-in', str(csr), '-CA', str(ca_cert), '-CAkey',
              str(ca_key), '-CAcreateserial', '-days', str(days), '-out', str(cert),
              '-extfile', str(ext)], f'signing the {name} certificate')
    key.chmod(0o600)
    return cert, key


def make_certificates(folder: str | Path, hosts: tuple[str, ...] = ('localhost', '127.0.0.1'),
                      name: str = 'ca') -> Certificates:
    """A CA (``<name>.crt``) and a server certificate for ``hosts`` signed by it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _issue(folder, name, None, None, f'CN=edge_vision test CA {name}', None)
    san = ','.join(f'IP:{h}' if h.replace('.', '').isdigit() or ':' in h else f'DNS:{h}'
                   for h in hosts)
    server_cert, server_key = _issue(folder, f'{name}-server', ca_cert, ca_key,
                                     f'CN={hosts[0]}', san)
    return Certificates(folder, ca_cert, ca_key, server_cert, server_key)


class MosquittoBroker:
    """One private Mosquitto process (see the module docstring).

    Args:
        folder: where its configuration, password file, ACL, data and log go.
        users: ``{name: password}``; None allows anonymous clients.
        acl: the ACL file's text (Mosquitto syntax), or None for none.
        certificates: serve TLS with these (None: plain TCP).
        require_certificate: TLS clients must present a certificate signed by the CA.
        persistence: keep sessions and queued messages on disk.
        autosave_changes: save the database after this many changes: 1 (the default, for
            fault-injection tests) makes a ``kill -9`` lose as little as Mosquitto allows but
            rewrites the whole database each time, which a busy broker cannot afford (the
            example configuration in config/mosquitto/ uses 100).
        port: the loopback port (0: a free one, kept across restarts).
        extra: more configuration lines.

    Raises:
        ConfigError: mosquitto / mosquitto_passwd missing (with the install command).
    """

    def __init__(self, folder: str | Path, *, users: dict[str, str] | None = None,
                 acl: str | None = None, certificates: Certificates | None = None,
                 require_certificate: bool = False, persistence: bool = True,
                 autosave_changes: int = 1, port: int = 0, extra: str = '') -> None:
        self.executable = find_tool('mosquitto')
        if self.executable is None:
            raise ConfigError('mosquitto is not installed (Debian/Ubuntu: apt install '
                              'mosquitto)')
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.certificates = certificates
        self.users = dict(users or {})
        self.log_path = self.folder / 'mosquitto.log'
        self.proc: subprocess.Popen | None = None
        lines = [f'user {getpass.getuser()}', 'per_listener_settings false',
                 f'listener {self.port} 127.0.0.1',
                 f'allow_anonymous {"true" if users is None else "false"}',
                 'log_type error', 'log_type warning', 'log_type notice',
                 'log_type information', 'connection_messages true', 'log_timestamp true',
                 'max_queued_messages 100000']
        if users is not None:
            passwd = find_tool('mosquitto_passwd')
            if passwd is None:
                raise ConfigError('mosquitto_passwd is not installed (apt install mosquitto)')
            path = self.folder / 'passwd'
            path.unlink(missing_ok=True)
            path.touch(mode=0o600)
            for name, password in users.items():
                _run([passwd, '-b', str(path), name, password], 'mosquitto_passwd')
            lines.append(f'password_file {path}')
        if acl is not None:
            path = self.folder / 'acl'
            path.write_text(acl)
            path.chmod(0o600)
            lines.append(f'acl_file {path}')
        if certificates is not None:
            lines += [f'cafile {certificates.ca_cert}', f'certfile {certificates.server_cert}',
                      f'keyfile {certificates.server_key}', 'tls_version tlsv1.2',
                      f'require_certificate {"true" if require_certificate else "false"}']
        if persistence:
            data = self.folder / 'data'
            data.mkdir(exist_ok=True)
            lines += ['persistence true', f'persistence_location {data}/',
                      f'autosave_interval {int(autosave_changes)}', 'autosave_on_changes true']
        lines += extra.splitlines()
        self.config_path = self.folder / 'mosquitto.conf'
        self.config_path.write_text('\n'.join(lines) + '\n')

    @property
    def url(self) -> str:
        return f'{"mqtts" if self.certificates else "mqtt"}://127.0.0.1:{self.port}'

    @property
    def ca_file(self) -> str:
        return str(self.certificates.ca_cert) if self.certificates else ''

    def start(self, timeout: float = 15.0) -> MosquittoBroker:
        """Start it and wait until the port accepts connections.

        Raises:
            ConfigError: it exited or did not listen in time (with its log).
        """
        if self.alive():
            return self
        log = open(self.log_path, 'a')
        self.proc = subprocess.Popen([self.executable, '-c', str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ConfigError(f'mosquitto exited with {self.proc.returncode}:\n{self.log()}')
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise ConfigError(f'mosquitto did not listen on port {self.port} within {timeout} s:\n'
                          f'{self.log()}')

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9``: no goodbye, no last save."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """A clean stop (SIGTERM: Mosquitto saves its data and exits)."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, down_s: float = 0.0) -> MosquittoBroker:
        """Kill -9, stay down ``down_s`` seconds, start again on the same port."""
        self.kill()
        time.sleep(down_s)
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors='replace')
        except OSError:
            return ''

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
