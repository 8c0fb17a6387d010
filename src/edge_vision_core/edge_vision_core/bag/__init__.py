"""rosbag2-compatible MCAP bags without ROS: definitions, writer (split, rotation, crash
safety), reader (recovers files cut short) and result extraction for comparing runs.

``mcap`` and ``mcap-ros2-support`` are imported only when a bag is written or read.
"""

from __future__ import annotations

from .definitions import find_share, full_definition, type_hash
from .reader import BagMessage, BagReader, Recovered
from .writer import BagConfig, BagTopic, BagWriter, QosProfile, bag_files

__all__ = ['BagConfig', 'BagMessage', 'BagReader', 'BagTopic', 'BagWriter', 'QosProfile',
           'Recovered', 'bag_files', 'find_share', 'full_definition', 'type_hash']
