"""tools/setup_env.py: the Debian package step, the interface build order, the distro table.

The venvs themselves are built by ``make setup``/``make test`` (one per leg); these tests check
the parts a teammate changes by adding a line: apt.txt, a package in tools/interfaces, a pin.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from pathlib import Path

import edge_vision_setup_env as setup_env  # tools/setup_env.py, loaded by conftest.py
import pytest

NO_SUCH_PACKAGE = 'edge-vision-no-such-package'

needs_dpkg = pytest.mark.skipif(shutil.which('dpkg-query') is None,
                                reason='not a Debian/Ubuntu system (no dpkg-query)')


def test_apt_list_drops_comments_and_blank_lines(tmp_path):
    listing = tmp_path / 'apt.txt'
    listing.write_text('# header\n\nmosquitto\n  chromium   # browser tests\n#iproute2\n')
    assert setup_env.read_list(listing) == ['mosquitto', 'chromium']


def test_the_repository_apt_list_names_packages_one_per_line():
    names = setup_env.debian_packages()
    assert names, 'tools/requirements/apt.txt lists no package'
    for name in names:
        # Debian package names: lower case, digits, + - . (no versions, no options).
        assert re.fullmatch(r'[a-z0-9][a-z0-9+.-]+', name), name
    assert len(names) == len(set(names))


@needs_dpkg
def test_installed_and_missing_packages_are_told_apart_by_dpkg():
    assert setup_env.missing_debian_packages(['dpkg', NO_SUCH_PACKAGE]) == [NO_SUCH_PACKAGE]
    assert setup_env.missing_debian_packages([]) == []


def fake_apt_get(tmp_path: Path, exit_code: int) -> Path:
    """A stand-in ``apt-get`` on PATH that records its arguments (the real one would change
    this machine) and exits with ``exit_code``."""
    calls = tmp_path / 'calls.txt'
    script = tmp_path / 'bin' / 'apt-get'
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexit {exit_code}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return calls


@needs_dpkg
def test_nothing_is_run_when_every_package_is_installed(tmp_path, monkeypatch):
    calls = fake_apt_get(tmp_path, 0)
    monkeypatch.setenv('PATH', f'{tmp_path / "bin"}{os.pathsep}{os.environ["PATH"]}')
    start = time.monotonic()
    assert setup_env.ensure_debian_packages(['dpkg', 'coreutils'], is_root=True) == []
    assert not calls.exists()
    assert time.monotonic() - start < 10  # one dpkg-query, not an apt run


@needs_dpkg
def test_without_root_the_exact_install_command_is_printed(capsys, tmp_path, monkeypatch):
    calls = fake_apt_get(tmp_path, 0)
    monkeypatch.setenv('PATH', f'{tmp_path / "bin"}{os.pathsep}{os.environ["PATH"]}')
    missing = setup_env.ensure_debian_packages(['dpkg', NO_SUCH_PACKAGE], is_root=False)
    assert missing == [NO_SUCH_PACKAGE]
    out = capsys.readouterr().out
    assert f'sudo apt-get install --yes --no-install-recommends {NO_SUCH_PACKAGE}\n' in out
    assert not calls.exists()


@needs_dpkg
def test_as_root_a_failed_install_refreshes_the_lists_retries_and_then_fails(tmp_path,
                                                                            monkeypatch):
    calls = fake_apt_get(tmp_path, 100)
    monkeypatch.setenv('PATH', f'{tmp_path / "bin"}{os.pathsep}{os.environ["PATH"]}')
    with pytest.raises(setup_env.SetupError, match='apt-get'):
        setup_env.ensure_debian_packages([NO_SUCH_PACKAGE, 'dpkg'], is_root=True)
    lines = calls.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ['install', 'update']
    assert NO_SUCH_PACKAGE in lines[0] and 'dpkg' not in lines[0].split()
    assert '--no-install-recommends' in lines[0] and 'DPkg::Lock::Timeout' in lines[0]


@needs_dpkg
def test_as_root_an_install_that_leaves_the_package_missing_is_an_error(tmp_path, monkeypatch):
    calls = fake_apt_get(tmp_path, 0)  # "succeeds" but installs nothing
    monkeypatch.setenv('PATH', f'{tmp_path / "bin"}{os.pathsep}{os.environ["PATH"]}')
    with pytest.raises(setup_env.SetupError, match=f'{NO_SUCH_PACKAGE} is still not installed'):
        setup_env.ensure_debian_packages([NO_SUCH_PACKAGE], is_root=True)
    assert calls.read_text().split()[0] == 'install'


def write_package(folder: Path, name: str, depends: list[str], interfaces: bool = True) -> None:
    (folder / name).mkdir(parents=True)
    tags = ''.join(f'<depend>{d}</depend>' for d in depends)
    group = '<member_of_group>rosidl_interface_packages</member_of_group>' if interfaces else ''
    (folder / name / 'package.xml').write_text(
        f'<?xml version="1.0"?><package format="3"><name>{name}</name>'
        f'<buildtool_depend>ament_cmake</buildtool_depend>{tags}{group}</package>')


def test_interface_packages_are_built_after_the_ones_they_depend_on(tmp_path):
    # "a_msgs" sorts first by name but needs "z_msgs" (in the other folder); std_msgs is in
    # neither; "core" is not an interface package.
    tools, src = tmp_path / 'tools', tmp_path / 'src'
    write_package(tools, 'a_msgs', ['z_msgs', 'std_msgs'])
    write_package(src, 'z_msgs', ['std_msgs'])
    write_package(tools, 'b_msgs', [])
    write_package(src, 'core', ['a_msgs'], interfaces=False)
    order = [pkg.name for pkg in setup_env.interface_packages((tools, src))]
    assert order == ['b_msgs', 'z_msgs', 'a_msgs']


@pytest.mark.parametrize(('packages', 'message'), [
    ([('a_msgs', ['b_msgs']), ('b_msgs', ['a_msgs'])], 'cycle'),
    ([('a_msgs', []), ('a_msgs', [])], 'two interface packages named a_msgs'),
])
def test_interface_package_errors_are_reported(tmp_path, packages, message):
    for i, (name, depends) in enumerate(packages):
        write_package(tmp_path / str(i), name, depends)
    folders = tuple(tmp_path / str(i) for i in range(len(packages)))
    with pytest.raises(setup_env.SetupError, match=message):
        setup_env.interface_packages(folders)


def test_the_repository_interface_packages_include_vision_msgs():
    packages = {pkg.name: pkg for pkg in setup_env.interface_packages()}
    assert 'vision_msgs' in packages
    assert {'std_msgs', 'geometry_msgs'} <= packages['vision_msgs'].depends


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in setup_env.read_list(path):
        match = re.fullmatch(r'([A-Za-z0-9_.\-]+)==([^\s;]+)', line)
        if match:
            found[re.sub(r'[-_.]+', '-', match[1]).lower()] = match[2]
    return found


@pytest.mark.parametrize('distro', sorted(setup_env.DISTROS))
def test_each_distro_pins_agree_with_its_constraints_file(distro):
    # pip refuses a requirement pinned to another version than its constraint: catch it here,
    # with the names, rather than in the middle of a set-up.
    spec = setup_env.DISTROS[distro]
    for path in spec.files:
        assert path.exists(), f'{distro}: {path} is missing'
    constraints = pins(setup_env.REQUIREMENTS / spec.constraints)
    for name in spec.requirements:
        for package, version in pins(setup_env.REQUIREMENTS / name).items():
            if package in constraints:
                assert constraints[package] == version, (
                    f'{name} pins {package}=={version} but {spec.constraints} has '
                    f'{constraints[package]}')


def test_the_humble_core_leg_pins_ubuntu_22_04_numpy_and_opencv():
    spec = setup_env.DISTROS['humble-core']
    constraints = pins(setup_env.REQUIREMENTS / spec.constraints)
    assert spec.python == (3, 10)
    assert constraints['numpy'].startswith('1.21.')
    opencv = {k: v for k, v in constraints.items() if k.startswith('opencv')}
    assert opencv and all(v.startswith('4.5.') for v in opencv.values()), opencv


def test_system_program_finds_a_listed_package_program(system_program):
    path = system_program('ip', package='iproute2')  # skips where iproute2 is missing
    assert os.access(path, os.X_OK) and Path(path).name == 'ip'
