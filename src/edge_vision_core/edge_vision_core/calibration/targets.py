"""Calibration targets: chessboards and ChArUco boards, detection with sub-pixel corners.

Conventions:

- Image points are OpenCV pixel coordinates of the full-resolution image: x right, y down, the
  centre of the top-left pixel at (0, 0), float32.
- Object points are in the board frame, in the unit of ``square_size`` (metres by convention):
  origin at the first inner corner for chessboards (OpenCV's and ROS camera_calibration's
  convention), at an outer corner of the board for ChArUco boards (OpenCV's: the top-left one
  of the printed picture since OpenCV 4.6, the bottom-left one before), x along ``cols``, y
  along ``rows``, z = 0 on the board plane.
- ``cols`` x ``rows`` counts *inner corners* for a chessboard (a board of 10 x 7 squares has
  9 x 6 inner corners, as for ROS camera_calibration's ``--size``) and *squares* for a ChArUco
  board (as OpenCV's ``CharucoBoard`` and camera_calibration's ChArUco mode count them).
- Corner ids: chessboard corners are numbered row by row (``id = row * cols + col``), ChArUco
  corners by OpenCV's ChArUco numbering (row by row over the ``(cols-1) x (rows-1)`` inner
  corners).

ChArUco boards need ``cv2.aruco``: OpenCV >= 4.7 (``opencv-python``; ArUco is in the main
module) or OpenCV 4.5/4.6 with the contrib modules (``opencv-contrib-python``, or Ubuntu's
``python3-opencv`` on ROS 2 Humble). OpenCV 4.6 changed the layout of ChArUco boards with an
even number of rows; boards printed for the earlier layout need ``legacy_pattern=True``, which
OpenCV < 4.6 and >= 4.8 support (OpenCV 4.6/4.7 cannot read them). Boards with an odd number of
rows are the same in both layouts.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..config import check_config, param
from ..errors import CalibrationError, ConfigError, ConversionError

__all__ = [
    'ARUCO_DICTIONARIES',
    'CalibrationTarget',
    'CharucoTarget',
    'ChessboardTarget',
    'Diagnosis',
    'TargetConfig',
    'TargetDetection',
    'make_target',
    'to_gray',
]

_LOG = logging.getLogger(__name__)

#: ArUco dictionaries a ChArUco board can use (OpenCV's names).
ARUCO_DICTIONARIES: tuple[str, ...] = (
    'DICT_4X4_50', 'DICT_4X4_100', 'DICT_4X4_250', 'DICT_4X4_1000',
    'DICT_5X5_50', 'DICT_5X5_100', 'DICT_5X5_250', 'DICT_5X5_1000',
    'DICT_6X6_50', 'DICT_6X6_100', 'DICT_6X6_250', 'DICT_6X6_1000',
    'DICT_7X7_50', 'DICT_7X7_100', 'DICT_7X7_250', 'DICT_7X7_1000',
    'DICT_ARUCO_ORIGINAL', 'DICT_APRILTAG_16h5', 'DICT_APRILTAG_25h9', 'DICT_APRILTAG_36h10',
    'DICT_APRILTAG_36h11',
)
_DICT_SIZES = {'DICT_ARUCO_ORIGINAL': 1024, 'DICT_APRILTAG_16h5': 30,
               'DICT_APRILTAG_25h9': 35, 'DICT_APRILTAG_36h10': 2320,
               'DICT_APRILTAG_36h11': 587}


@dataclass(frozen=True)
class TargetConfig:
    """The calibration target: its kind, size and detection settings."""

    pattern: str = field(default='chessboard', metadata=param(
        'Calibration target: "chessboard" (black and white squares) or "charuco" (a '
        'chessboard with ArUco markers in the white squares; works when partly visible).',
        choices=('chessboard', 'charuco')))
    cols: int = field(default=9, metadata=param(
        'Chessboard: inner corners along a row (a board of 10x7 squares has 9x6). ChArUco: '
        'squares along a row.', min=2, max=100))
    rows: int = field(default=6, metadata=param(
        'Chessboard: inner corners along a column. ChArUco: squares along a column.',
        min=2, max=100))
    square_size: float = field(default=0.025, metadata=param(
        'Side of one square, in metres (sets the unit of the board poses; the intrinsics do '
        'not depend on it).', min=1e-4, max=10.0, unit='m'))
    marker_size: float = field(default=0.0, metadata=param(
        'ChArUco: side of one ArUco marker in metres; 0 = 0.75 x square_size.',
        min=0.0, max=10.0, unit='m'))
    dictionary: str = field(default='DICT_4X4_50', metadata=param(
        'ChArUco: the ArUco dictionary of the markers (OpenCV name).',
        choices=ARUCO_DICTIONARIES))
    legacy_pattern: bool = field(default=False, metadata=param(
        'ChArUco: the layout of boards made with OpenCV < 4.6 (differs only for an even '
        'number of rows; needs OpenCV < 4.6 or >= 4.8).'))
    chessboard_detector: str = field(default='classic', metadata=param(
        'Chessboard: "classic" (cv2.findChessboardCorners + cornerSubPix, as ROS '
        'camera_calibration) or "sectors" (cv2.findChessboardCornersSB: more robust to blur '
        'and noise, slower).', choices=('classic', 'sectors')))
    detect_max_side: int = field(default=1280, metadata=param(
        'Chessboard: detect on a copy shrunk so its longest side is at most this many pixels '
        '(faster on large images), then refine the corners at full resolution; 0 = full '
        'resolution. ChArUco boards are always detected at full resolution.',
        min=0, max=100000, unit='px'))
    refine_window: int = field(default=0, metadata=param(
        'Half-size of the sub-pixel corner refinement window; 0 = automatic: for chessboards '
        '0.4 x the distance from each corner to its nearest neighbour (2 to 11 px), for '
        'ChArUco boards OpenCV\'s own refinement (window set by the distance to the markers).',
        min=0, max=50, unit='px'))
    min_charuco_corners: int = field(default=8, metadata=param(
        'ChArUco: fewest corners a view must show to count as a detection.', min=4, max=10000))

    def __post_init__(self) -> None:
        check_config(self)
        if self.pattern == 'charuco':
            marker = self.effective_marker_size
            if marker >= self.square_size:
                raise ConfigError(f'TargetConfig.marker_size ({marker}) must be smaller than '
                                  f'square_size ({self.square_size})')
            markers = (self.cols * self.rows) // 2
            capacity = _dictionary_size(self.dictionary)
            if markers > capacity:
                raise ConfigError(
                    f'a {self.cols}x{self.rows} ChArUco board has {markers} markers but '
                    f'{self.dictionary} only {capacity}; choose a larger dictionary (e.g. '
                    f'{_larger_dictionary(self.dictionary, markers)})')

    @property
    def effective_marker_size(self) -> float:
        """ChArUco marker side in metres (``marker_size`` or 0.75 x ``square_size``)."""
        return self.marker_size if self.marker_size > 0 else 0.75 * self.square_size


def _dictionary_size(name: str) -> int:
    if name in _DICT_SIZES:
        return _DICT_SIZES[name]
    return int(name.rsplit('_', 1)[1])


def _larger_dictionary(name: str, markers: int) -> str:
    family = re.match(r'DICT_(\dX\d)_', name)
    prefix = family.group(1) if family else '5X5'
    for size in (50, 100, 250, 1000):
        if size >= markers:
            return f'DICT_{prefix}_{size}'
    return 'DICT_ARUCO_ORIGINAL' if markers <= 1024 else 'DICT_APRILTAG_36h10'


@dataclass(frozen=True)
class Diagnosis:
    """Why a target was not found, for the user.

    Attributes:
        message: continues "found no <target> in N images; ..." with what was seen and what
            to change.
        other_target: True when a *different* target configuration is visible (another size,
            dictionary or layout): the configuration is wrong, more images will not help.
    """

    message: str
    other_target: bool = False


@dataclass(frozen=True, eq=False)
class TargetDetection:
    """The target corners found in one image.

    Attributes:
        image_points: (N, 2) float32 corner positions, pixels of the full image.
        object_points: (N, 3) float32 the same corners in the board frame (z = 0), metres.
        ids: (N,) int32 corner ids (see the module docstring).
        image_size: ``(width, height)`` of the image.
        complete: True when every corner of the board was found.
    """

    image_points: np.ndarray
    object_points: np.ndarray
    ids: np.ndarray
    image_size: tuple[int, int]
    complete: bool

    def __post_init__(self) -> None:
        ip = np.ascontiguousarray(self.image_points, dtype=np.float32).reshape(-1, 2)
        op = np.ascontiguousarray(self.object_points, dtype=np.float32).reshape(-1, 3)
        ids = np.ascontiguousarray(self.ids, dtype=np.int32).ravel()
        if not (len(ip) == len(op) == len(ids)):
            raise ConfigError(f'TargetDetection: {len(ip)} image points, {len(op)} object '
                              f'points and {len(ids)} ids must have the same length')
        for name, arr in (('image_points', ip), ('object_points', op), ('ids', ids)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.ids)


def to_gray(image: np.ndarray) -> np.ndarray:
    """An 8-bit single-channel view of ``image`` for detection.

    Args:
        image: (H, W) or (H, W, 1) gray, (H, W, 3) BGR or (H, W, 4) BGRA; uint8 or uint16
            (scaled down to 8 bits).

    Returns:
        (H, W) uint8.

    Raises:
        ConversionError: other shapes or dtypes.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    if arr.dtype != np.uint8:
        raise ConversionError(f'calibration images must be uint8 or uint16, got {arr.dtype}')
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3 and arr.shape[2] == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2GRAY)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2GRAY)
    raise ConversionError(f'calibration images must be (H, W) gray or (H, W, 3) BGR, got shape '
                          f'{arr.shape}')


def _refine(gray: np.ndarray, points: np.ndarray, windows: np.ndarray | int) -> np.ndarray:
    """cornerSubPix, each corner with its own window half-size (an int or (N,) ints)."""
    pts = np.array(points, dtype=np.float32).reshape(-1, 2)  # a writable copy
    windows = np.broadcast_to(np.asarray(windows, dtype=np.int64), (len(pts),))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 0.001)
    for window in np.unique(windows):
        sel = np.flatnonzero(windows == window)
        group = np.ascontiguousarray(pts[sel]).reshape(-1, 1, 2)
        cv2.cornerSubPix(gray, group, (int(window), int(window)), (-1, -1), criteria)
        pts[sel] = group.reshape(-1, 2)
    return pts


def _local_spacing(points: np.ndarray, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """(N,) distance from each corner to its nearest grid neighbour, pixels."""
    spacing = np.full(len(points), np.inf)
    for i, j in pairs:
        d = float(np.linalg.norm(points[i] - points[j]))
        spacing[i] = min(spacing[i], d)
        spacing[j] = min(spacing[j], d)
    finite = np.isfinite(spacing)
    fallback = spacing[finite].min() if finite.any() else 10.0
    return np.where(finite, spacing, fallback)


def _shrink(gray: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``gray`` shrunk (area averaging) so its longer side is at most ``max_side``, and the
    scale used (1.0 and the same array when it already fits)."""
    side = max(gray.shape)
    if max_side <= 0 or side <= max_side:
        return gray, 1.0
    scale = max_side / side
    small = cv2.resize(gray, (max(1, round(gray.shape[1] * scale)),
                              max(1, round(gray.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    return small, scale


class CalibrationTarget(ABC):
    """A calibration target: finds its corners in images and draws itself.

    Build one with :func:`make_target`. Instances hold no per-image state, so one target can
    serve any number of images (and threads).
    """

    def __init__(self, config: TargetConfig) -> None:
        self.config = config

    @property
    @abstractmethod
    def corner_count(self) -> int:
        """Number of corners of the whole board."""

    @abstractmethod
    def all_object_points(self) -> np.ndarray:
        """(corner_count, 3) float32 board-frame coordinates of every corner, by id."""

    @abstractmethod
    def detect(self, image: np.ndarray) -> TargetDetection | None:
        """Find the target in ``image`` (gray or BGR, uint8/uint16).

        Returns:
            The sub-pixel corners, or None when the target is not (sufficiently) visible.
        """

    @abstractmethod
    def board_image(self, pixels_per_square: int, margin_px: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        """A printable picture of the board.

        Args:
            pixels_per_square: side of one square in pixels.
            margin_px: white border around the board.

        Returns:
            ``(image, A)``: the (H, W) uint8 picture and the (2, 3) float64 affine map from
            board-frame (x, y) in metres to its pixel coordinates.
        """

    @abstractmethod
    def describe(self) -> str:
        """One line for messages, e.g. '9x6 chessboard (inner corners), 25 mm squares'."""

    @abstractmethod
    def diagnose(self, images: Iterable[np.ndarray]) -> Diagnosis:
        """Why the target was not found in ``images`` (a few), and what to change."""

    def neighbour_pairs(self, ids: np.ndarray) -> list[tuple[int, int]]:
        """Index pairs (into ``ids``) of corners that are horizontal/vertical neighbours."""
        cols = self._grid_cols
        where = {int(i): k for k, i in enumerate(ids)}
        pairs = []
        for k, i in enumerate(ids):
            i = int(i)
            if (i + 1) % cols and i + 1 in where:
                pairs.append((k, where[i + 1]))
            if i + cols in where:
                pairs.append((k, where[i + cols]))
        return pairs

    @property
    @abstractmethod
    def _grid_cols(self) -> int:
        """Corners per row of the corner grid (for neighbour ids)."""


class ChessboardTarget(CalibrationTarget):
    """A chessboard with ``cols`` x ``rows`` inner corners; every corner must be visible."""

    def __init__(self, config: TargetConfig) -> None:
        if config.pattern != 'chessboard':
            raise ConfigError(f'ChessboardTarget needs pattern="chessboard", got '
                              f'{config.pattern!r}')
        super().__init__(config)
        c, r, s = config.cols, config.rows, config.square_size
        grid = np.mgrid[0:r, 0:c].astype(np.float32)  # (2, r, c): y, x
        self._objp = np.stack([grid[1].ravel() * s, grid[0].ravel() * s,
                               np.zeros(c * r, np.float32)], axis=1).astype(np.float32)
        self._objp.setflags(write=False)

    @property
    def corner_count(self) -> int:
        return self.config.cols * self.config.rows

    @property
    def _grid_cols(self) -> int:
        return self.config.cols

    def all_object_points(self) -> np.ndarray:
        return self._objp

    def describe(self) -> str:
        c = self.config
        return (f'{c.cols}x{c.rows} chessboard (inner corners; {c.cols + 1}x{c.rows + 1} '
                f'squares), {c.square_size * 1000:g} mm squares')

    def _find(self, gray: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
        if self.config.chessboard_detector == 'sectors':
            flags = cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_EXHAUSTIVE
            found, corners = cv2.findChessboardCornersSB(gray, size, flags=flags)
        else:
            flags = (cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
                     | cv2.CALIB_CB_FAST_CHECK)
            found, corners = cv2.findChessboardCorners(gray, size, flags=flags)
        if not found or corners is None:
            return None
        return corners.reshape(-1, 2).astype(np.float32)

    def detect(self, image: np.ndarray) -> TargetDetection | None:
        gray = to_gray(image)
        small, scale = _shrink(gray, self.config.detect_max_side)
        size = (self.config.cols, self.config.rows)
        corners = self._find(small, size)
        if corners is None:
            return None
        if scale != 1.0:
            # Pixel centres: x_full + 0.5 = (x_small + 0.5) / scale.
            corners = (corners + 0.5) / scale - 0.5
        ids = np.arange(self.corner_count, dtype=np.int32)
        if self.config.chessboard_detector == 'classic' or scale != 1.0:
            window = self.config.refine_window
            if window <= 0:
                # Stays clear of the neighbouring corners: 0.4 x the local corner spacing.
                spacing = _local_spacing(corners, self.neighbour_pairs(ids))
                window = np.clip(np.floor(0.4 * spacing), 2, 11).astype(int)
            corners = _refine(gray, corners, window)
        return TargetDetection(corners, self._objp, ids, (gray.shape[1], gray.shape[0]),
                               complete=True)

    def board_image(self, pixels_per_square: int, margin_px: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        c, pps = self.config, int(pixels_per_square)
        squares_x, squares_y = c.cols + 1, c.rows + 1
        yy, xx = np.mgrid[0:squares_y * pps, 0:squares_x * pps]
        board = np.where(((yy // pps) + (xx // pps)) % 2 == 0, 0, 255).astype(np.uint8)
        image = cv2.copyMakeBorder(board, margin_px, margin_px, margin_px, margin_px,
                                   cv2.BORDER_CONSTANT, value=255)
        # The first inner corner lies between pixels: at margin + pps - 0.5.
        k = pps / c.square_size
        offset = margin_px + pps - 0.5
        return image, np.array([[k, 0.0, offset], [0.0, k, offset]])

    def diagnose(self, images: Iterable[np.ndarray]) -> Diagnosis:
        c = self.config
        votes: Counter[tuple[int, int]] = Counter()
        checked = 0
        for image in images:
            checked += 1
            size = _visible_chessboard_size(to_gray(image))
            if size is not None:
                # Name it in the user's orientation (columns first when they gave more columns).
                big, small = max(size), min(size)
                votes[(big, small) if c.cols >= c.rows else (small, big)] += 1
        if votes:
            # The detector can stop growing the grid early (it then reports part of the
            # board), never beyond the board: the largest grid seen is the board.
            cols, rows = max(votes, key=lambda size: (size[0] * size[1], votes[size]))
            count = votes[(cols, rows)]
            if {cols, rows} == {c.cols, c.rows}:
                return Diagnosis(
                    f'but the sector-based detector sees a {cols}x{rows} chessboard in {count} '
                    f'of the {checked} images checked: use it (chessboard_detector="sectors", '
                    '--detector sectors), or take sharper, evenly lit images', True)
            return Diagnosis(
                f'but a {cols}x{rows} chessboard ({cols + 1}x{rows + 1} squares) is visible in '
                f'{count} of the {checked} images checked: did you mean --size {cols}x{rows} '
                f'(cols={cols}, rows={rows})? Give the inner corners, not the squares.', True)
        return Diagnosis(
            'and no chessboard of another size either: check that the images show the whole '
            'board, sharp and well lit, and that the size counts inner corners (a board of '
            '10x7 squares has 9x6).')


def _visible_chessboard_size(gray: np.ndarray) -> tuple[int, int] | None:
    """Inner-corner grid (cols, rows) of a chessboard in ``gray``, whatever its size.

    Uses ``cv2.findChessboardCornersSB`` with ``CALIB_CB_LARGER`` from a 3x3 seed (50-70 ms on
    VGA, where the classic detector takes 0.4 s (OpenCV 4.14) to 4 s (4.5) per wrong size).
    """
    small, _ = _shrink(gray, 1024)
    flags = cv2.CALIB_CB_LARGER | cv2.CALIB_CB_NORMALIZE_IMAGE
    found, corners = cv2.findChessboardCornersSB(small, (3, 3), flags=flags)
    if not found or corners is None:
        return None
    pts = corners.reshape(-1, 2).astype(np.float64)
    n = len(pts)
    if n <= 9:
        return None  # the seed itself: the detector did not grow it to the whole board
    steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    jumps = np.flatnonzero(steps > 2.0 * np.median(steps))
    cols = int(jumps[0]) + 1 if len(jumps) else n
    if cols < 2 or n % cols:
        return None
    return cols, n // cols


class _ArucoApi:
    """The parts of cv2.aruco we use, for OpenCV 4.5/4.6 (contrib) and >= 4.7 (main)."""

    def __init__(self) -> None:
        aruco = getattr(cv2, 'aruco', None)
        if aruco is None:
            raise CalibrationError(
                f'ChArUco targets need OpenCV\'s aruco module, which this cv2 '
                f'({cv2.__version__}) lacks: install opencv-python >= 4.7 (or '
                'opencv-contrib-python for older versions; on Ubuntu python3-opencv has it)')
        self.aruco = aruco
        self.modern = hasattr(aruco, 'CharucoDetector')
        if not self.modern and not hasattr(aruco, 'CharucoBoard_create'):
            raise CalibrationError(
                f'this OpenCV ({cv2.__version__}) has an aruco module without ChArUco support; '
                'install opencv-python >= 4.7 or opencv-contrib-python >= 4.5')
        self.version = tuple(int(v) for v in re.findall(r'\d+', cv2.__version__)[:2])

    def dictionary(self, name: str) -> object:
        ident = getattr(self.aruco, name, None)
        if ident is None:
            raise CalibrationError(f'ArUco dictionary {name} is not in this OpenCV '
                                   f'({cv2.__version__})')
        return self.aruco.getPredefinedDictionary(ident)

    def board(self, config: TargetConfig, dictionary: object) -> object:
        c = config
        legacy_native = self.version < (4, 6)
        if self.modern:
            board = self.aruco.CharucoBoard((c.cols, c.rows), c.square_size,
                                            c.effective_marker_size, dictionary)
        else:
            board = self.aruco.CharucoBoard_create(c.cols, c.rows, c.square_size,
                                                   c.effective_marker_size, dictionary)
        if c.rows % 2 == 0:
            if c.legacy_pattern and not legacy_native:
                if not hasattr(board, 'setLegacyPattern'):
                    raise CalibrationError(
                        f'legacy_pattern=True (a ChArUco board made with OpenCV < 4.6) needs '
                        f'OpenCV < 4.6 or >= 4.8, this is {cv2.__version__}')
                board.setLegacyPattern(True)
            elif not c.legacy_pattern and legacy_native:
                raise CalibrationError(
                    f'OpenCV {cv2.__version__} only knows the pre-4.6 layout of ChArUco boards '
                    f'with an even number of rows ({c.rows}); if the board was made with OpenCV '
                    '< 4.6 set legacy_pattern=True, otherwise use OpenCV >= 4.6')
        return board

    def corners(self, board: object) -> np.ndarray:
        if hasattr(board, 'getChessboardCorners'):
            pts = board.getChessboardCorners()
        else:
            pts = board.chessboardCorners
        return np.asarray(pts, dtype=np.float32).reshape(-1, 3)

    def draw(self, board: object, size: tuple[int, int], margin: int) -> np.ndarray:
        if hasattr(board, 'generateImage'):
            return board.generateImage(size, marginSize=margin, borderBits=1)
        return board.draw(size, marginSize=margin, borderBits=1)

    def detect(self, board: object, dictionary: object, gray: np.ndarray
               ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """``(charuco corners (N, 2), charuco ids (N,), marker ids (M,))``, Nones if absent."""
        if self.modern:
            detector = self.aruco.CharucoDetector(board)
            ch_corners, ch_ids, _, marker_ids = detector.detectBoard(gray)
        else:
            params = self.aruco.DetectorParameters_create()
            marker_corners, marker_ids, _ = self.aruco.detectMarkers(gray, dictionary,
                                                                     parameters=params)
            ch_corners = ch_ids = None
            if marker_ids is not None and len(marker_ids):
                _, ch_corners, ch_ids = self.aruco.interpolateCornersCharuco(
                    marker_corners, marker_ids, gray, board)
        if ch_corners is not None and ch_ids is not None and len(ch_ids):
            ch_corners = np.asarray(ch_corners, np.float32).reshape(-1, 2)
            ch_ids = np.asarray(ch_ids, np.int32).ravel()
        else:
            ch_corners = ch_ids = None
        if marker_ids is not None and len(marker_ids):
            marker_ids = np.asarray(marker_ids, np.int32).ravel()
        else:
            marker_ids = None
        return ch_corners, ch_ids, marker_ids

    def markers(self, dictionary: object, gray: np.ndarray) -> int:
        """Number of markers of ``dictionary`` visible in ``gray``."""
        if self.modern:
            detector = self.aruco.ArucoDetector(dictionary, self.aruco.DetectorParameters())
            _, ids, _ = detector.detectMarkers(gray)
        else:
            _, ids, _ = self.aruco.detectMarkers(
                gray, dictionary, parameters=self.aruco.DetectorParameters_create())
        return 0 if ids is None else len(ids)


class CharucoTarget(CalibrationTarget):
    """A ChArUco board of ``cols`` x ``rows`` squares; partial views are usable."""

    def __init__(self, config: TargetConfig) -> None:
        if config.pattern != 'charuco':
            raise ConfigError(f'CharucoTarget needs pattern="charuco", got {config.pattern!r}')
        super().__init__(config)
        self._api = _ArucoApi()
        self._dictionary = self._api.dictionary(config.dictionary)
        self._board = self._api.board(config, self._dictionary)
        self._objp = self._api.corners(self._board)
        self._objp.setflags(write=False)
        self._check: tuple[bool, np.ndarray] | None = None

    @property
    def corner_count(self) -> int:
        return (self.config.cols - 1) * (self.config.rows - 1)

    @property
    def _grid_cols(self) -> int:
        return self.config.cols - 1

    def all_object_points(self) -> np.ndarray:
        return self._objp

    def describe(self) -> str:
        c = self.config
        legacy = ', pre-OpenCV-4.6 layout' if c.legacy_pattern else ''
        return (f'{c.cols}x{c.rows} ChArUco board (squares), {c.square_size * 1000:g} mm '
                f'squares, {c.effective_marker_size * 1000:g} mm {c.dictionary} markers{legacy}')

    def _detect_raw(self, gray: np.ndarray
                    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        return self._api.detect(self._board, self._dictionary, gray)

    def detect(self, image: np.ndarray) -> TargetDetection | None:
        # Full resolution, with OpenCV's own sub-pixel refinement (it sizes each corner's
        # window by the distance to the markers; re-refining with cornerSubPix was measured
        # worse on rendered boards: RMS 0.11 px against 0.08 with OpenCV 4.14), corrected by
        # the half-pixel shift some OpenCV versions have (see _self_check).
        gray = to_gray(image)
        corners, ids, _ = self._detect_raw(gray)
        if corners is None or len(ids) < self.config.min_charuco_corners:
            return None
        if np.any(ids < 0) or np.any(ids >= self.corner_count):
            return None
        corners = corners - self._self_check()[1].astype(np.float32)
        if self.config.refine_window > 0:
            corners = _refine(gray, corners, self.config.refine_window)
        objp = self._objp[ids]
        # Corners on one line carry no information about the board's orientation.
        centred = objp[:, :2] - objp[:, :2].mean(axis=0)
        if np.linalg.matrix_rank(centred, tol=1e-6 * self.config.square_size) < 2:
            return None
        return TargetDetection(corners, objp, ids, (gray.shape[1], gray.shape[0]),
                               complete=len(ids) == self.corner_count)

    def _mapping(self, pixels_per_square: int, margin_px: int, y_up: bool) -> np.ndarray:
        k = pixels_per_square / self.config.square_size
        offset = margin_px - 0.5  # the board's outer corner lies between pixels
        if y_up:
            return np.array([[k, 0.0, offset],
                             [0.0, -k, offset + self.config.rows * pixels_per_square]])
        return np.array([[k, 0.0, offset], [0.0, k, offset]])

    def board_image(self, pixels_per_square: int, margin_px: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        c, pps = self.config, int(pixels_per_square)
        size = (c.cols * pps + 2 * margin_px, c.rows * pps + 2 * margin_px)
        image = self._api.draw(self._board, size, margin_px)
        return image, self._mapping(pps, margin_px, self._self_check()[0])

    def _self_check(self) -> tuple[bool, np.ndarray]:
        """How this OpenCV draws and reads ChArUco boards: ``(y_up, corner_offset)``.

        Detects the corners in the board's own picture (slightly blurred, as a camera sees
        it), where their true positions are known:

        - ``y_up``: the board's y axis points up in its picture (OpenCV < 4.6 put the origin
          at the bottom-left);
        - ``corner_offset``: (2,) px, the mean shift of OpenCV's ChArUco corners from the true
          ones, rounded to half pixels. Measured +0.5 px in x and y with OpenCV 4.5.5, 4.6.0
          and 4.7.0 (the rendered-view RMS drops from 0.69 px to 0.11-0.17 px once it is
          subtracted) and 0 with 4.14.
        """
        if self._check is None:
            pps, margin = 60, 30
            c = self.config
            picture = self._api.draw(self._board, (c.cols * pps + 2 * margin,
                                                   c.rows * pps + 2 * margin), margin)
            corners, ids, _ = self._detect_raw(cv2.GaussianBlur(picture, (0, 0), 1.0))
            if corners is None:
                self._check = (False, np.zeros(2))
            else:
                y_up = bool(corners[np.argmin(ids)][1] > picture.shape[0] / 2)
                A = self._mapping(pps, margin, y_up)
                truth = self._objp[ids][:, :2].astype(np.float64) @ A[:, :2].T + A[:, 2]
                shift = np.round(2.0 * (corners - truth).mean(axis=0)) / 2.0
                if np.any(shift):
                    _LOG.info('OpenCV %s shifts ChArUco corners by (%+.1f, %+.1f) px; '
                              'correcting', cv2.__version__, shift[0], shift[1])
                self._check = (y_up, shift)
        return self._check

    def diagnose(self, images: Iterable[np.ndarray]) -> Diagnosis:
        c = self.config
        markers_total = 0
        corners_best = 0
        ids_max = -1
        checked = 0
        grays = []
        for image in images:
            gray = to_gray(image)
            grays.append(gray)
            checked += 1
            corners, ids, marker_ids = self._detect_raw(gray)
            if marker_ids is not None:
                markers_total += len(marker_ids)
                ids_max = max(ids_max, int(marker_ids.max()))
            if ids is not None:
                corners_best = max(corners_best, len(ids))
        board_markers = (c.cols * c.rows) // 2
        if markers_total == 0:
            others = []
            for name in ARUCO_DICTIONARIES:
                if name == c.dictionary:
                    continue
                try:
                    dictionary = self._api.dictionary(name)
                except CalibrationError:
                    continue
                if any(self._api.markers(dictionary, g) >= 2 for g in grays):
                    others.append(name)
            if others:
                return Diagnosis(
                    f'and no {c.dictionary} markers either, but markers of {", ".join(others)} '
                    f'are visible: did you mean --dictionary {others[0]} '
                    f'(dictionary={others[0]})?', True)
            return Diagnosis('and no ArUco markers of any dictionary: check that the images '
                             'show the board, sharp and well lit.')
        if ids_max >= board_markers:
            return Diagnosis(
                f'{c.dictionary} markers with ids up to {ids_max} are visible, but a '
                f'{c.cols}x{c.rows} board only has markers 0..{board_markers - 1}: the board is '
                'larger; give its number of squares (cols x rows).', True)
        hint = (f'{markers_total} markers were seen in {checked} images, but at most '
                f'{corners_best} ChArUco corners in one image (at least '
                f'{c.min_charuco_corners} are needed)')
        if c.rows % 2 == 0:
            hint += (f'; boards with an even number of rows differ between OpenCV < 4.6 and '
                     f'later: try legacy_pattern={"False" if c.legacy_pattern else "True"} '
                     f'(--legacy-pattern)')
        return Diagnosis(hint + '; also check that cols x rows counts squares, not inner '
                         'corners.')


def make_target(config: TargetConfig) -> CalibrationTarget:
    """The target described by ``config``.

    Raises:
        CalibrationError: ChArUco without a usable ``cv2.aruco``.
    """
    if config.pattern == 'chessboard':
        return ChessboardTarget(config)
    return CharucoTarget(config)
