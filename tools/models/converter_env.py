"""Helpers shared by the model converters in tools/models (standard library only).

The converters run in two stages: this part (any Python 3.10+) makes a throw-away venv with
the pinned converter packages and checks downloads; the conversion then runs inside that venv.
Importable from a converter run as a script (``python3 tools/models/<converter>.py``: its folder
is on ``sys.path``).
"""

from __future__ import annotations

import hashlib
import subprocess
import venv
from collections.abc import Callable, Sequence
from pathlib import Path


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_venv(path: Path, pins: Sequence[str], log: Callable[[str], None]) -> Path:
    """The converter venv at ``path`` with exactly ``pins`` installed (created or updated
    once; a marker file remembers the pins). Returns its python."""
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
