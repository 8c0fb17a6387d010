"""Cost of sensor_msgs/Image <-> numpy conversions next to a bare memcpy of the same pixels.

Usage: ``.venv/bin/python benchmarks/bench_conversions.py [--size 640x480] [--repeat 300]``

Prints, per encoding, the median time of: ``np.copyto`` of the same bytes into an existing
buffer (memcpy), ``arr.copy()`` (allocate + memcpy: the floor for anything that must produce a
new buffer, page faults included), ``numpy_to_image`` (array -> message: one copy into a new
message buffer), ``image_to_numpy`` (message -> array: a view) and the same read with a padded
``step``. A conversion "not dominated by copies" costs about one allocate+copy for writing and
next to nothing for reading.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from edge_vision.conversions import image_to_numpy, numpy_to_image

ENCODINGS = {
    'bgr8': (np.uint8, 3), 'rgba8': (np.uint8, 4), 'mono8': (np.uint8, 1),
    'mono16': (np.uint16, 1), '32FC1': (np.float32, 1), 'yuyv': (np.uint8, 2),
}


def median_us(repeat: int, fn, *args) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', default='640x480')
    parser.add_argument('--repeat', type=int, default=300)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split('x'))
    rng = np.random.default_rng(0)
    print(f'Image <-> numpy, {width}x{height}, median of {args.repeat} runs (microseconds)')
    print(f'{"encoding":>9} {"MB":>6} {"memcpy":>8} {"alloc+copy":>11} {"to_msg":>8} '
          f'{"from_msg":>9} {"from_msg(pad)":>14}')
    for encoding, (dtype, channels) in ENCODINGS.items():
        shape = (height, width) if channels == 1 else (height, width, channels)
        arr = rng.integers(0, 200, shape).astype(dtype)
        dst = np.empty_like(arr)
        msg = numpy_to_image(arr, encoding)
        padded = numpy_to_image(np.pad(arr, [(0, 0), (0, 16)] + [(0, 0)] * (arr.ndim - 2)),
                                encoding)
        padded.width = width  # same pixels, 16 pixels of row padding in step
        t_copy = median_us(args.repeat, np.copyto, dst, arr)
        t_new = median_us(args.repeat, arr.copy)
        t_to = median_us(args.repeat, numpy_to_image, arr, encoding)
        t_from = median_us(args.repeat, image_to_numpy, msg)
        t_pad = median_us(args.repeat, image_to_numpy, padded)
        assert np.array_equal(image_to_numpy(padded), arr)
        print(f'{encoding:>9} {arr.nbytes / 1e6:6.2f} {t_copy:8.1f} {t_new:11.1f} {t_to:8.1f} '
              f'{t_from:9.1f} {t_pad:14.1f}')


if __name__ == '__main__':
    main()
