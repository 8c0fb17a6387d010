"""Frame sources: V4L2 cameras, video files, image folders, network streams, synthetic scenes.

One ``source`` string picks the kind (:func:`parse_source`):

=============================================  ==============================================
``synthetic`` / ``synthetic:pan``              :class:`SyntheticSource` (``pan``: moving camera)
``0``, ``/dev/video0``, ``v4l2:///dev/video2``  :class:`V4L2Source` (OpenCV's V4L2 backend)
``rtsp://...``, ``http(s)://...``, ``udp://``   :class:`StreamSource` (FFmpeg backend)
``gst:...`` or any string containing ``!``      :class:`StreamSource` (GStreamer pipeline)
``run.mcap``, a rosbag2 bag folder             :class:`BagSource` (a recording; ``#topic``)
a directory, or a glob (``frames/*.png``)       :class:`ImageFolderSource`
any other path                                  :class:`VideoFileSource`
=============================================  ==============================================

Every source returns frames as ``bgr8`` (H, W, 3) uint8 arrays (mono cameras too, so the
pipeline has one layout), in :class:`SourceFrame` with the source's own frame index and, for the
synthetic source, the ground truth; a recording (:class:`BagSource`) also gives each frame's
original stamp and frame_id.

This module is also the one reader of "a folder, a glob or a video -> frames" for the command
line and the library (``edge-vision detect``, ``calibrate``, ``anomaly-fit``, the optimize
image sets): :func:`list_files` says which files a folder or glob names (in a stable order,
``**`` spanning folders), :func:`read_image` decodes one image, and :func:`read_frames` iterates
over the frames of any finite source with a stride and a limit.

Failure contract (the camera node builds its retry logic on it):

- :meth:`FrameSource.open` raises :class:`~edge_vision_core.errors.SourceError` with what is
  wrong and what to do (missing device, file not found, backend without GStreamer...);
- :meth:`FrameSource.read` returns ``None`` at the end of a finite source (file without
  ``loop``), raises :class:`CorruptFrameError` for one unreadable frame (skip, count, go on),
  and raises ``SourceError`` when the device or stream is gone (close, reopen later).

Faults a long-running camera meets, and what the sources make of them: an image folder is
listed again when its list runs out or a listed file disappears (a folder that is emptied
raises ``SourceError`` until images are back); a video file that is deleted, replaced or
truncated while it plays raises ``SourceError`` (the camera node reopens it), and a looping
video that ends before the frame count its header declares is reported instead of looping over
what is left; a network stream that goes silent for ``timeout_s`` raises ``SourceError``.
"""

from __future__ import annotations

import abc
import glob
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..config import check_config, param
from ..encodings import buffer_to_array, convert_encoding, decompress, opencv_encoding
from ..errors import ConfigError, ConversionError, SourceError
from ..types import Detections
from .files import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from .synthetic import SyntheticConfig, SyntheticScene

__all__ = [
    'BagSource',
    'CorruptFrameError',
    'FrameSource',
    'ImageFolderSource',
    'SourceConfig',
    'SourceFrame',
    'StreamSource',
    'SyntheticSource',
    'V4L2Source',
    'VideoFileSource',
    'list_files',
    'open_source',
    'parse_source',
    'read_frames',
    'read_image',
]

_LOG = logging.getLogger(__name__)


class CorruptFrameError(SourceError):
    """One frame could not be decoded; the source itself is still usable."""


@dataclass(frozen=True)
class SourceConfig:
    """What to open and how (the camera node's source parameters)."""

    source: str = field(default='synthetic', metadata=param(
        'Frame source: "synthetic" (or "synthetic:pan"), a V4L2 device ("0", "/dev/video0"), '
        'a video file, an image folder or glob, a stream URL (rtsp://, http://) or a '
        'GStreamer pipeline ("gst:..." or containing "!").'))
    width: int = field(default=0, metadata=param(
        'Requested frame width for cameras/synthetic (0 = the source default).', min=0,
        max=7680, unit='px'))
    height: int = field(default=0, metadata=param(
        'Requested frame height for cameras/synthetic (0 = the source default).', min=0,
        max=4320, unit='px'))
    fps: float = field(default=0.0, metadata=param(
        'Frame rate requested from a camera (0 = its default).', min=0.0, max=1000.0,
        unit='Hz'))
    pixel_format: str = field(default='', metadata=param(
        'V4L2 pixel format as a FOURCC, e.g. MJPG or YUYV (empty = driver default).'))
    loop: bool = field(default=False, metadata=param(
        'Restart video files and image folders at the end instead of stopping.'))
    timeout_s: float = field(default=5.0, metadata=param(
        'Network streams: give up opening, or reopen a stream that delivered nothing, after '
        'this long.', min=0.1, max=600.0, unit='s'))

    def __post_init__(self) -> None:
        check_config(self)
        if not self.source.strip():
            raise ConfigError('SourceConfig.source is empty; use "synthetic", a device, a file, '
                              'a folder or a URL')
        if self.pixel_format and not re.fullmatch(r'[A-Za-z0-9 ]{4}', self.pixel_format):
            raise ConfigError(f'SourceConfig.pixel_format must be a 4-character FOURCC such as '
                              f'MJPG or YUYV, got {self.pixel_format!r}')


@dataclass
class SourceFrame:
    """One frame from a source.

    Attributes:
        image: (H, W, 3) uint8 BGR.
        index: the source's running frame number (0-based; restarts when a file loops; for an
            image folder the file's position in the listing).
        truth: ground-truth detections (synthetic source only), boxes in ``image`` pixels.
        name: the image file's name (image folders), else empty.
        stamp_ns: the frame's own acquisition stamp (recordings), None for "now".
        frame_id: the frame's own optical frame (recordings), '' for the camera's.
    """

    image: np.ndarray
    index: int
    truth: Detections | None = None
    name: str = ''
    stamp_ns: int | None = None
    frame_id: str = ''


class FrameSource(abc.ABC):
    """A source of BGR frames. Not thread-safe: one reader at a time."""

    #: True for cameras and streams: frames come at the device's pace and can disappear.
    live: bool = False

    def __init__(self, config: SourceConfig) -> None:
        self.config = config

    @property
    def native_fps(self) -> float | None:
        """The source's own frame rate if it has one (a file's, a camera's), else None."""
        return None

    @property
    def description(self) -> str:
        return f'{type(self).__name__}({self.config.source})'

    @abc.abstractmethod
    def open(self) -> None:
        """Open the device/file; raises SourceError saying what is wrong."""

    @abc.abstractmethod
    def read(self) -> SourceFrame | None:
        """The next frame; None at the end of a finite source (see module docstring)."""

    def close(self) -> None:
        """Release the device/file. Safe to call twice."""
        return None

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_bgr(frame: np.ndarray) -> np.ndarray:
    """An OpenCV frame (mono/BGR/BGRA, 8 or 16 bits) as bgr8 (no copy when it is bgr8)."""
    return convert_encoding(frame, opencv_encoding(frame), 'bgr8')


class SyntheticSource(FrameSource):
    """The synthetic scene of :mod:`edge_vision_core.io.synthetic` as a source (never ends)."""

    def __init__(self, config: SourceConfig, scene: SyntheticScene | None = None) -> None:
        super().__init__(config)
        if scene is None:
            pan = config.source.strip().lower() == 'synthetic:pan'
            scene = SyntheticScene(SyntheticConfig(
                width=config.width or 640, height=config.height or 480,
                pan_px_per_frame=3.0 if pan else 0.0))
        self.scene = scene
        self._index = 0

    @property
    def native_fps(self) -> float | None:
        return self.config.fps or 30.0

    def open(self) -> None:
        self._index = 0

    def read(self) -> SourceFrame:
        image, truth = self.scene.render(self._index)
        frame = SourceFrame(image, self._index, truth)
        self._index += 1
        return frame


class _CaptureSource(FrameSource):
    """Common code of the cv2.VideoCapture-based sources; :meth:`read` is that of the live ones
    (a failed read means the device or stream went away)."""

    #: the source in error messages, and what a failed read means
    _kind = 'capture'
    _stopped = 'stopped delivering frames'

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self._cap: cv2.VideoCapture | None = None
        self._index = 0

    @property
    def native_fps(self) -> float | None:
        if self._cap is None:
            return None
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return fps if 0.5 <= fps <= 1000 else None

    def _capture(self, target: str | int, api: int, params: tuple[int, ...] = ()
                 ) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(target, api, list(params)) if params else \
            cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(self._open_failure())
        return cap

    def _open_failure(self) -> str:
        return f'could not open {self.config.source!r}'

    def read(self) -> SourceFrame | None:
        if self._cap is None:
            raise SourceError(f'{self._kind} is not open')
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise SourceError(f'{self._kind} {self.config.source!r} {self._stopped}')
        return self._next(frame)

    def _next(self, frame: np.ndarray) -> SourceFrame:
        out = SourceFrame(_to_bgr(frame), self._index)
        self._index += 1
        return out

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _after_scheme(spec: str, scheme: str) -> str | None:
    """What follows ``scheme`` (e.g. ``'gst:'``) at the start of ``spec``, in any letter case;
    None when ``spec`` does not start with it."""
    text = spec.strip()
    return text[len(scheme):] if text[:len(scheme)].lower() == scheme else None


def _v4l2_target(spec: str) -> str | int:
    rest = _after_scheme(spec, 'v4l2://')
    spec = spec.strip() if rest is None else rest
    return int(spec) if spec.isdigit() else spec


class V4L2Source(_CaptureSource):
    """A V4L2 camera through OpenCV (``CAP_V4L2``), with size, rate and FOURCC requests."""

    live = True
    _kind = 'camera'
    _stopped = 'stopped delivering frames (unplugged?)'

    def open(self) -> None:
        target = _v4l2_target(self.config.source)
        path = f'/dev/video{target}' if isinstance(target, int) else target
        if not os.path.exists(path):
            raise SourceError(f'camera {path} does not exist: is it plugged in? (ls /dev/video* '
                              f'lists the devices; the user needs the "video" group)')
        if not os.access(path, os.R_OK | os.W_OK):
            raise SourceError(f'no permission to open {path}: add the user to the "video" '
                              f'group (sudo usermod -aG video $USER) and log in again')
        cap = self._capture(target, cv2.CAP_V4L2)
        cfg = self.config
        if cfg.pixel_format:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*cfg.pixel_format))
        if cfg.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
        if cfg.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        if cfg.fps:
            cap.set(cv2.CAP_PROP_FPS, cfg.fps)
        self._cap, self._index = cap, 0
        got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if (cfg.width and got[0] != cfg.width) or (cfg.height and got[1] != cfg.height):
            _LOG.warning('%s: asked for %dx%d, the driver gives %dx%d', path, cfg.width,
                         cfg.height, *got)

    def _open_failure(self) -> str:
        return (f'OpenCV could not open camera {self.config.source!r} with V4L2: it may be in '
                f'use by another process (fuser /dev/video*) or not a capture device')



class VideoFileSource(_CaptureSource):
    """A video file; ends (``read() -> None``) or loops at the end.

    The file is watched while it plays: deleted, replaced by another file or cut shorter
    raises SourceError (reopen later). A file that ends before the frame count its header
    declares is truncated or damaged: with ``loop`` that raises SourceError instead of looping
    over what is left; without it the source ends and :attr:`ended_early` says so.
    """

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self._stat: os.stat_result | None = None
        self._count = 0
        #: ``(frames read, frames declared)`` when the file ended before its declared length.
        self.ended_early: tuple[int, int] | None = None

    @property
    def path(self) -> Path:
        return Path(self.config.source).expanduser()

    @property
    def frame_count(self) -> int:
        """Frames the open file declares (0 when unknown)."""
        return self._count

    def open(self) -> None:
        path = self.path
        if not path.is_file():
            raise SourceError(f'video file {str(path)!r} not found')
        self._cap = self._capture(str(path), cv2.CAP_ANY)
        self._stat = path.stat()
        self._count = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self._index = 0
        self.ended_early = None

    def _open_failure(self) -> str:
        return (f'OpenCV cannot decode video file {self.config.source!r} (unsupported codec or '
                f'not a video)')

    def _check_file(self) -> None:
        """Raise SourceError when the file was deleted, replaced or cut since it was opened."""
        try:
            now = self.path.stat()
        except OSError:
            raise SourceError(f'video file {self.config.source!r} disappeared while '
                              f'streaming') from None
        was = self._stat
        if was is None:
            return
        if (now.st_ino, now.st_dev) != (was.st_ino, was.st_dev):
            raise SourceError(f'video file {self.config.source!r} was replaced while '
                              f'streaming: reopening it')
        if now.st_size < was.st_size:
            raise SourceError(f'video file {self.config.source!r} was truncated while '
                              f'streaming ({was.st_size} -> {now.st_size} bytes)')

    def seek(self, index: int) -> None:
        """Go to frame ``index`` (0-based) for the next :meth:`read`."""
        if self._cap is None:
            raise SourceError('video file is not open')
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        self._index = index

    def read(self) -> SourceFrame | None:
        if self._cap is None:
            raise SourceError('video file is not open')
        self._check_file()
        ok, frame = self._cap.read()
        if ok and frame is not None:
            return self._next(frame)
        self._check_file()
        if self._count and self._index + max(2, self._count // 50) < self._count:
            self.ended_early = (self._index, self._count)
            text = (f'video file {self.config.source!r} ended at frame {self._index} of the '
                    f'{self._count} its header declares: it is truncated or damaged')
            if self.config.loop:
                raise SourceError(text)
            _LOG.warning('%s', text)
        if not self.config.loop:
            return None
        self.seek(0)
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise SourceError(f'could not restart video file {self.config.source!r}')
        return self._next(frame)


def video_facts(path: str | Path) -> tuple[int, float | None]:
    """``(frame count, fps)`` a video file's header declares (0 / None when it does not say).

    Raises:
        SourceError: the file is missing or OpenCV cannot decode it.
    """
    src = VideoFileSource(SourceConfig(source=str(path)))
    src.open()
    try:
        return src.frame_count, src.native_fps
    finally:
        src.close()


def missing_input(spec: str, what: str = 'input') -> str:
    """The message for a path that is not there (one wording for every reader)."""
    return (f'{what} {spec!r} does not exist (file or folder not found): give a folder of '
            f'images, a glob such as "shots/*.png" or a video file')


def list_files(spec: str | Path, videos: bool = False) -> list[Path]:
    """The files a path, folder or glob names, in a stable order.

    - an existing file: that file, whatever its suffix (an image or a video);
    - a folder: its images (:data:`~edge_vision_core.io.files.IMAGE_SUFFIXES`, not those of its
      subfolders), sorted by name;
    - a glob (``*``, ``?``, ``[...]``; ``**`` matches any depth of folders): the matching image
      files, and videos too with ``videos``, sorted by path (folder by folder).

    Raises:
        SourceError: a path that does not exist, a folder without images, a glob that matches
            none (the message names it and what to give).
    """
    text = str(spec)
    expanded = os.path.expanduser(text)
    path = Path(expanded)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise SourceError(f'folder {str(path)!r} holds no images '
                              f'({", ".join(IMAGE_SUFFIXES)})')
        return files
    if glob.has_magic(expanded):
        suffixes = IMAGE_SUFFIXES + (VIDEO_SUFFIXES if videos else ())
        matches = [Path(p) for p in glob.glob(expanded, recursive=True)]
        files = sorted(p for p in matches if p.suffix.lower() in suffixes and p.is_file())
        if not files:
            kinds = 'image or video' if videos else 'image'
            other = f' ({len(matches)} other path(s) do, none an {kinds} file)' if matches \
                else ''
            raise SourceError(f'no files match {text!r}{other}')
        return files
    raise SourceError(missing_input(text))


def read_image(path: str | Path) -> np.ndarray:
    """One image file as bgr8 (H, W, 3): mono and 16-bit images converted, alpha dropped,
    EXIF orientation applied.

    Raises:
        CorruptFrameError: the file is gone, or OpenCV cannot decode it.
    """
    image = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if image is None:
        if not os.path.exists(path):
            raise CorruptFrameError(f'image {str(path)!r} disappeared')
        raise CorruptFrameError(f'could not decode image {str(path)!r}')
    try:
        return _to_bgr(image)
    except ConversionError as exc:
        raise CorruptFrameError(f'image {str(path)!r}: {exc}') from exc


class ImageFolderSource(FrameSource):
    """Images of a folder (sorted by name), a glob pattern or one image file, one frame each
    (:func:`list_files`).

    The listing follows the folder: it is read again when it runs out (files that sort after
    the last one read are played next; with ``loop`` it then starts over) and when a listed
    file has disappeared (reading goes on after that name). A folder left without images raises
    SourceError, so a camera node reconnects until images are back.
    """

    #: re-listings one read() may make before it gives up on a folder that keeps changing
    _RELISTS = 3

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self._files: list[Path] | None = None
        self._pos = 0

    def open(self) -> None:
        self._files, self._pos = list_files(self.config.source), 0

    def _relist(self, after: Path | None) -> None:
        """List again and continue after ``after`` (from the start when None)."""
        self._files = list_files(self.config.source)
        self._pos = 0 if after is None else sum(1 for p in self._files if p <= after)

    def read(self) -> SourceFrame | None:
        if self._files is None:
            raise SourceError('image folder source is not open')
        for _ in range(self._RELISTS):
            if self._pos >= len(self._files):
                self._relist(self._files[-1] if self._files else None)
                if self._pos >= len(self._files):
                    if not self.config.loop:
                        return None
                    self._pos = 0
            index = self._pos
            path = self._files[index]
            self._pos += 1
            if not path.exists():
                _LOG.info('%s disappeared: listing %s again', path, self.config.source)
                self._relist(path)
                continue
            return SourceFrame(read_image(path), index, name=path.name)
        raise SourceError(f'image folder {self.config.source!r} keeps changing while it is '
                          f'read (files disappear faster than they are listed)')

    def close(self) -> None:
        self._files = None


class BagSource(FrameSource):
    """The images of a recorded bag (rosbag2 MCAP: a ``.mcap`` file or a bag folder), with
    their original header stamps and frame_ids, so a recording replays through the pipeline as
    it was seen.

    The image topic is the bag's only ``sensor_msgs/CompressedImage`` or ``sensor_msgs/Image``
    topic, else the one ending in ``image_raw/compressed``; name another with
    ``path#/topic``. Its own rate (:attr:`native_fps`) is the recording's mean frame rate from
    the stamps. With ``loop`` the stamps of every pass are shifted past the previous pass, so
    they keep increasing.
    """

    IMAGE_TYPES = ('sensor_msgs/msg/CompressedImage', 'sensor_msgs/msg/Image')

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self.path, self.topic = self.split_spec(config.source)
        self._reader = None
        self._messages = None
        self._index = 0
        self._fps: float | None = None
        #: images in the recording (known once open)
        self.frame_count = 0
        self._span_ns = 0
        self._offset_ns = 0
        self._last_ns = 0

    @staticmethod
    def split_spec(spec: str) -> tuple[str, str]:
        """``('run.mcap', '/camera0/image_raw/compressed')`` for
        ``'run.mcap#/camera0/image_raw/compressed'`` (the topic '' when not given)."""
        path, _, topic = spec.strip().partition('#')
        return os.path.expanduser(path), topic

    @staticmethod
    def is_bag(spec: str) -> bool:
        """True for a ``.mcap`` file path or a folder holding a rosbag2 MCAP bag."""
        path = BagSource.split_spec(spec)[0]
        if path.lower().endswith('.mcap'):
            return True
        folder = Path(path)
        return folder.is_dir() and (any(folder.glob('*.mcap')) or
                                    (folder / 'metadata.yaml').is_file())

    @property
    def native_fps(self) -> float | None:
        return self._fps

    def open(self) -> None:
        from ..bag.reader import BagReader

        reader = BagReader(self.path)
        images = {t: k for t, k in reader.topics().items() if k in self.IMAGE_TYPES}
        topic = self.topic
        if topic and topic not in images:
            raise SourceError(f'bag {self.path!r} has no image topic {topic!r}; its image '
                              f'topics: {sorted(images) or "none"}')
        if not topic:
            raw = [t for t in images if t.endswith('image_raw/compressed')]
            if len(images) == 1:
                topic = next(iter(images))
            elif len(raw) == 1:
                topic = raw[0]
            else:
                raise SourceError(f'bag {self.path!r} has {len(images)} image topics '
                                  f'({sorted(images) or "none"}): name one as '
                                  f'"{self.path}#/topic"')
        self._reader, self.topic = reader, topic
        stamps = []
        for _, msg in reader.decoded([topic]):
            stamps.append(_stamp_ns(msg))
        if not stamps:
            raise SourceError(f'bag {self.path!r} has no messages on {topic}')
        self.frame_count = len(stamps)
        self._span_ns = max(0, stamps[-1] - stamps[0])
        self._fps = (len(stamps) - 1) * 1e9 / self._span_ns if self._span_ns > 0 else None
        self._messages = reader.decoded([topic])
        self._index = self._offset_ns = self._last_ns = 0

    def read(self) -> SourceFrame | None:
        if self._messages is None:
            raise SourceError('bag source is not open')
        item = next(self._messages, None)
        if item is None:
            if not self.config.loop:
                return None
            period = int(1e9 / self._fps) if self._fps else 1
            self._offset_ns += self._span_ns + period
            self._messages = self._reader.decoded([self.topic])
            self._index = 0
            item = next(self._messages, None)
            if item is None:
                raise SourceError(f'bag {self.path!r} could not be read again')
        bag_msg, msg = item
        index = self._index
        self._index += 1
        try:
            if bag_msg.type == 'sensor_msgs/msg/Image':
                arr = buffer_to_array(msg.data, msg.height, msg.width, msg.step, msg.encoding,
                                      bool(msg.is_bigendian))
                image = convert_encoding(arr, msg.encoding, 'bgr8')
            else:
                image, _ = decompress(bytes(msg.data), msg.format, 'bgr8')
        except ConversionError as exc:
            raise CorruptFrameError(f'{self.path}: image {index} of {self.topic}: {exc}') \
                from exc
        return SourceFrame(image, index, stamp_ns=_stamp_ns(msg) + self._offset_ns,
                           frame_id=str(msg.header.frame_id))

    def close(self) -> None:
        if self._messages is not None:
            self._messages.close()  # closes the file the reader has open
        self._messages = None
        self._reader = None


def _stamp_ns(msg: object) -> int:
    """The header stamp of a decoded message in integer nanoseconds."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


class StreamSource(_CaptureSource):
    """A network stream (FFmpeg backend) or a GStreamer pipeline ending in ``appsink``."""

    live = True
    _kind = 'stream'

    @property
    def is_gstreamer(self) -> bool:
        spec = self.config.source
        return _after_scheme(spec, 'gst:') is not None or '!' in spec

    def open(self) -> None:
        spec = self.config.source.strip()
        if self.is_gstreamer:
            if not _has_gstreamer():
                raise SourceError(
                    'this OpenCV build has no GStreamer support (the PyPI opencv wheels do '
                    'not); use the distro OpenCV (python3-opencv) or an rtsp:// URL')
            rest = _after_scheme(spec, 'gst:')
            pipeline = spec if rest is None else rest
            self._cap = self._capture(pipeline, cv2.CAP_GSTREAMER)
        else:
            self._cap = self._capture(spec, cv2.CAP_FFMPEG, self._timeouts())
        self._index = 0

    def _timeouts(self) -> tuple[int, ...]:
        """FFmpeg open/read timeouts (OpenCV >= 4.5.2 has them), so a dropped stream fails a
        read after ``timeout_s`` instead of blocking the capture thread."""
        ms = int(self.config.timeout_s * 1000)
        names = ('CAP_PROP_OPEN_TIMEOUT_MSEC', 'CAP_PROP_READ_TIMEOUT_MSEC')
        if not all(hasattr(cv2, name) for name in names):
            return ()
        return tuple(v for name in names for v in (getattr(cv2, name), ms))

    def _open_failure(self) -> str:
        return (f'could not open stream {self.config.source!r}: check the URL/pipeline, the '
                f'network and credentials')



def _has_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith('GStreamer:'):
            return 'YES' in line
    return False


_STREAM = re.compile(r'^(rtsp|rtsps|rtmp|http|https|udp|tcp|srt)://', re.IGNORECASE)


def parse_source(spec: str) -> type[FrameSource]:
    """The source class for a ``source`` string (see the module docstring's table)."""
    text = spec.strip()
    lower = text.lower()
    if lower in ('synthetic', 'synthetic:pan'):
        return SyntheticSource
    if lower.startswith('synthetic'):
        raise ConfigError(f'unknown synthetic source {spec!r}; use "synthetic" or '
                          f'"synthetic:pan"')
    if text.isdigit() or _after_scheme(text, 'v4l2://') is not None or \
            re.fullmatch(r'/dev/video\d+', text):
        return V4L2Source
    if _STREAM.match(text) or _after_scheme(text, 'gst:') is not None or '!' in text:
        return StreamSource
    if BagSource.is_bag(text):
        return BagSource
    expanded = os.path.expanduser(text)
    if os.path.isdir(expanded) or glob.has_magic(expanded):
        return ImageFolderSource
    if Path(expanded).suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderSource
    return VideoFileSource


def open_source(config: SourceConfig) -> FrameSource:
    """Create (not open) the source ``config.source`` names."""
    return parse_source(config.source)(config)


def read_frames(source: str | Path, *, every: int = 1, max_frames: int = 0,
                on_corrupt: Callable[[CorruptFrameError], None] | None = None
                ) -> Iterator[SourceFrame]:
    """The frames of a folder, glob, image or video file (or of a live source, with
    ``max_frames``), opened now and read lazily.

    Args:
        source: a source string (see the module docstring).
        every: keep every n-th frame that could be read (1 = all).
        max_frames: stop after this many kept frames (0 = to the end).
        on_corrupt: called with each unreadable frame (an image that does not decode), which is
            then skipped; None raises it.

    Returns:
        An iterator of :class:`SourceFrame` (``index`` is the source's frame number, ``name``
        the image file's name).

    Raises:
        ConfigError: ``every < 1``, ``max_frames < 0``, or a source that never ends without
            ``max_frames``.
        SourceError: the source cannot be opened (the message names it and what to give), or a
            file source gave no frame at all.
    """
    if every < 1 or max_frames < 0:
        raise ConfigError(f'every must be >= 1 and max_frames >= 0, got {every}, {max_frames}')
    spec = str(source)
    kind = parse_source(spec)
    finite = kind in (ImageFolderSource, VideoFileSource)
    if not finite and not max_frames:
        raise ConfigError(f'{spec!r} is a live source that never ends: give max_frames')
    if finite:
        list_files(spec)  # one message for a missing path, an empty folder or glob
    src = kind(SourceConfig(source=spec))
    src.open()
    return _frames_of(src, spec, every, max_frames, on_corrupt)


def _frames_of(src: FrameSource, spec: str, every: int, max_frames: int,
               on_corrupt: Callable[[CorruptFrameError], None] | None
               ) -> Iterator[SourceFrame]:
    read = kept = 0
    try:
        while not max_frames or kept < max_frames:
            try:
                frame = src.read()
            except CorruptFrameError as exc:
                if on_corrupt is None:
                    raise
                on_corrupt(exc)
                continue
            if frame is None:
                break
            read += 1
            if (read - 1) % every:
                continue
            kept += 1
            yield frame
    finally:
        src.close()
    if not read:
        raise SourceError(f'{spec!r} gave no readable frame')
