"""A small live view a headless device serves to a browser (aiohttp, imported lazily).

:class:`~edge_vision_core.web.server.LiveServer` serves the page, an MJPEG stream of the newest
frame and the current state as JSON; the ROS side (``web_node``) feeds it frames and state.
"""

from __future__ import annotations

from .server import LiveServer, WebConfig, parse_address
from .state import LiveState, StageStatus

__all__ = ['LiveServer', 'LiveState', 'StageStatus', 'WebConfig', 'parse_address']
