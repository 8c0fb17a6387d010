"""rosbag2 MCAP bags in the core: definitions, split/rotation, crash safety, reading back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

pytest.importorskip('mcap')
pytest.importorskip('mcap_ros2')

from edge_vision_core import ConfigError, SourceError
from edge_vision_core.bag import (
    BagConfig,
    BagReader,
    BagTopic,
    BagWriter,
    QosProfile,
    bag_files,
    find_share,
    full_definition,
    type_hash,
)
from edge_vision_core.bag.definitions import DELIMITER


def _have_msg_files() -> bool:
    try:
        find_share('diagnostic_msgs')
    except LookupError:
        return False
    return True


# The humble-core leg has no ROS message packages: the tests of the definitions skip there, the
# writer/reader tests (split, rotation, kill -9) run with a definition given here.
needs_msg_files = pytest.mark.skipif(
    not _have_msg_files(),
    reason='needs the ROS message packages (their share/<pkg>/msg files): not in this venv')
# diagnostic_msgs/msg/KeyValue without its comments: all the readers need to decode it.
KEY_VALUE = 'string key\nstring value\n'

TYPES = ['sensor_msgs/msg/CompressedImage', 'sensor_msgs/msg/CameraInfo',
         'vision_msgs/msg/Detection2DArray', 'vision_msgs/msg/LabelInfo',
         'vision_msgs/msg/Classification', 'diagnostic_msgs/msg/DiagnosticArray']


def _sections(text: str) -> list[tuple[str, str]]:
    """``[(type, text)]`` of a ros2msg schema: the root first (type ''), then each MSG: part."""
    parts = text.split(f'\n{DELIMITER}\n')
    out = [('', parts[0])]
    for part in parts[1:]:
        head, _, body = part.partition('\n')
        assert head.startswith('MSG: '), head
        out.append((head[len('MSG: '):], body))
    return out


@needs_msg_files
@pytest.mark.parametrize('type_name', TYPES)
def test_definitions_are_the_installed_msg_files_each_once(type_name):
    text = full_definition(type_name)
    sections = _sections(text)
    package, _, name = type_name.split('/')
    assert sections[0][1] == (find_share(package) / 'msg' / f'{name}.msg').read_text()
    names = [n for n, _ in sections[1:]]
    assert len(names) == len(set(names)), f'a type is defined twice: {names}'
    for dep, body in sections[1:]:
        dep_package, dep_name = dep.split('/')
        assert body == (find_share(dep_package) / 'msg' / f'{dep_name}.msg').read_text(), dep


@needs_msg_files
@pytest.mark.parametrize('type_name', TYPES)
def test_definitions_parse_to_the_fields_the_message_classes_have(type_name):
    """mcap_ros2 (what Foxglove-style readers use) parses the schema to the same fields, for
    the type and every nested type, as the generated Python message classes declare."""
    import importlib

    from mcap_ros2._dynamic import generate_dynamic

    pytest.importorskip(f'{type_name.split("/")[0]}.msg')
    decoders = generate_dynamic(type_name, full_definition(type_name))
    assert type_name in decoders
    package, _, name = type_name.split('/')
    cls = getattr(importlib.import_module(f'{package}.msg'), name)
    text = full_definition(type_name)
    root_fields = [line.split()[1] for line in _sections(text)[0][1].splitlines()
                   if line.strip() and not line.lstrip().startswith('#') and
                   '=' not in line.split('#')[0]]
    assert root_fields == list(cls.get_fields_and_field_types())


@needs_msg_files
def test_type_hashes_are_the_upstream_ones():
    UPSTREAM_TYPE_HASHES = pytest.importorskip('edge_vision.type_hashes').UPSTREAM_TYPE_HASHES

    for name in ('sensor_msgs/msg/CompressedImage', 'vision_msgs/msg/Detection2DArray',
                 'vision_msgs/msg/LabelInfo'):
        assert type_hash(name) == UPSTREAM_TYPE_HASHES[name]
    assert type_hash('vision_msgs/msg/NoSuchType') == ''


@needs_msg_files
@pytest.mark.parametrize('bad, match', [
    ('sensor_msgs', 'not a message type name'),
    ('no_such_pkg/msg/Thing', 'not installed'),
    ('sensor_msgs/msg/NoSuchThing', 'no definition file'),
])
def test_definition_errors_name_the_type(bad, match):
    with pytest.raises(ConfigError, match=match):
        full_definition(bad)


def _topic(name: str = '/t', qos: QosProfile | None = None) -> BagTopic:
    return BagTopic(name, 'diagnostic_msgs/msg/KeyValue', KEY_VALUE, '', qos or QosProfile())


def _payload(i: int, size: int = 0) -> bytes:
    """A KeyValue message in CDR (little endian): key = the index, value = padding."""
    key = f'{i:08d}'.encode() + b'\0'
    value = b'x' * size + b'\0'
    head = b'\x00\x01\x00\x00'
    body = len(key).to_bytes(4, 'little') + key
    body += b'\0' * (-len(body) % 4)
    return head + body + len(value).to_bytes(4, 'little') + value


def _keys(path) -> list[int]:
    return [int(msg.key) for _, msg in BagReader(path).decoded()]


@pytest.mark.parametrize('cfg, match', [
    ({'path': 'a.mcap', 'split_size_mb': 1.0}, 'cannot be split'),
    ({'path': 'bag', 'max_files': 2}, 'remove whole files'),
    ({'path': 'bag', 'split_size_mb': 1.0, 'max_total_mb': 1.5}, 'at least two files'),
    ({'path': 'bag', 'compression': 'gzip'}, 'compression'),
])
def test_bag_config_refuses_what_it_cannot_do(cfg, match):
    with pytest.raises(ConfigError, match=match):
        BagConfig(**cfg)


def test_single_file_reads_back_with_profile_qos_and_counts(tmp_path):
    from mcap.reader import make_reader

    path = tmp_path / 'one.mcap'
    with BagWriter(BagConfig(path=str(path)), ros_distro='kilted') as writer:
        writer.add_topic(_topic('/a', QosProfile(durability='transient_local', depth=1)))
        writer.add_topic(_topic('/b'))
        for i in range(30):
            writer.write('/a' if i % 3 == 0 else '/b', _payload(i), 1_000 + i, 900 + i)
    with open(path, 'rb') as f:
        reader = make_reader(f)
        assert reader.get_header().profile == 'ros2'
        summary = reader.get_summary()
        channels = {c.topic: c for c in summary.channels.values()}
        qos = yaml.safe_load(channels['/a'].metadata['offered_qos_profiles'])
        assert qos[0]['durability'] == 1 and qos[0]['reliability'] == 1 and qos[0]['depth'] == 1
        assert 'topic_type_hash' in channels['/a'].metadata
        assert summary.schemas[channels['/a'].schema_id].encoding == 'ros2msg'
        assert summary.statistics.message_count == 30
        meta = {m.name: m.metadata for m in reader.iter_metadata()}
        info = yaml.safe_load(meta['rosbag2']['serialized_metadata'])
        assert info['message_count'] == 30 and meta['rosbag2']['ROS_DISTRO'] == 'kilted'
    bag = BagReader(path)
    assert bag.message_counts() == {'/a': 10, '/b': 20}
    assert sorted(_keys(path)) == list(range(30))
    first = next(bag.messages())
    assert (first.log_time_ns, first.publish_time_ns) == (1_000, 900)
    assert bag.recovered == []


def test_folder_splits_rotates_and_keeps_metadata_in_step(tmp_path):
    path = tmp_path / 'rec'
    cfg = BagConfig(path=str(path), split_size_mb=0.05, max_files=3, chunk_size_kb=16,
                    flush_period_s=0.0, compression='none')
    with BagWriter(cfg) as writer:
        writer.add_topic(_topic())
        for i in range(400):
            writer.write('/t', _payload(i, 1000), 10_000 + i)
    assert writer.files_removed > 0 and writer.messages_removed > 0
    on_disk = sorted(p.name for p in path.glob('*.mcap'))
    assert len(on_disk) == 3
    info = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert sorted(info['relative_file_paths']) == on_disk
    assert info['storage_identifier'] == 'mcap' and info['version'] == 5
    kept = 400 - writer.messages_removed
    assert info['message_count'] == kept == sum(f['message_count'] for f in info['files'])
    assert info['topics_with_message_count'][0]['message_count'] == kept
    # the newest messages survive, in order
    assert _keys(path) == list(range(400 - kept, 400))
    assert [p.name for p in bag_files(path)] == info['relative_file_paths']


def test_folder_splits_by_duration_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / 'rec'
    with BagWriter(BagConfig(path=str(path), split_duration_s=1.0)) as writer:
        writer.add_topic(_topic())
        for i in range(50):
            writer.write('/t', _payload(i), int(i * 0.1 * 1e9))  # 5 s of messages
    assert len(list(path.glob('*.mcap'))) == 5
    assert _keys(path) == list(range(50))
    with pytest.raises(ConfigError, match='already holds a recording'):
        BagWriter(BagConfig(path=str(path)))


def test_writing_an_undeclared_topic_or_a_closed_bag_is_refused(tmp_path):
    writer = BagWriter(BagConfig(path=str(tmp_path / 'x.mcap')))
    with pytest.raises(ConfigError, match='not declared'):
        writer.write('/nope', b'', 0)
    writer.close()
    with pytest.raises(ConfigError, match='closed'):
        writer.write('/nope', b'', 0)


def test_reader_names_what_is_missing(tmp_path):
    with pytest.raises(SourceError, match='not found'):
        BagReader(tmp_path / 'nope.mcap')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SourceError, match='no .mcap files'):
        BagReader(tmp_path / 'empty')


_WRITER = textwrap.dedent('''
    import sys, time
    sys.path[:0] = {paths!r}
    from test_bag_files import _payload, _topic
    from edge_vision_core.bag import BagConfig, BagWriter
    writer = BagWriter(BagConfig(path={path!r}, chunk_size_kb=64, flush_period_s=0.2))
    writer.add_topic(_topic())
    i = 0
    while True:
        writer.write('/t', _payload(i, 200), 1_000_000 + i)
        i += 1
        if i % 50 == 0:
            writer.flush()
            print('flushed', i, flush=True)
        time.sleep(0.001)
''')


def test_a_writer_killed_with_sigkill_leaves_a_readable_file(tmp_path):
    """kill -9 mid-recording: every message flushed before the kill reads back, intact and in
    order, although the file has no summary or footer."""
    path = tmp_path / 'crash.mcap'
    here = os.path.dirname(__file__)
    code = _WRITER.format(paths=[here], path=str(path))
    proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
    flushed = 0
    deadline = time.monotonic() + 120
    try:
        while flushed < 500 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith('flushed'):
                flushed = int(line.split()[1])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert flushed >= 500, 'the writer did not get going'
    bag = BagReader(path)
    keys = [int(msg.key) for _, msg in bag.decoded()]
    assert len(bag.recovered) == 1 and 'summary' in bag.recovered[0].reason
    assert len(keys) >= flushed
    assert keys == list(range(len(keys)))  # nothing lost in between, nothing garbled
