"""Frame sources: V4L2 cameras, video files, image folders, streams, a synthetic scene."""
