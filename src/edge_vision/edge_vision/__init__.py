"""edge_vision: ROS 2 nodes, launch support and the ``edge-vision`` CLI.

Nodes are thin: they convert messages with :mod:`edge_vision.conversions`, call
``edge_vision_core`` and publish. Importing this package does not import rclpy; the modules that
talk to ROS do.
"""

__version__ = '0.1.0'
