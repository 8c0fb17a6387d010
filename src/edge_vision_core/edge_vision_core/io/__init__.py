"""Frame sources: V4L2 cameras, video files, image folders, network streams and a synthetic scene."""
