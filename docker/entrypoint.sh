#!/usr/bin/env bash
# Source the distro and the edge_vision workspace, then run the command.
set -e
source "/opt/ros/${ROS_DISTRO}/setup.bash"
source /ws/install/setup.bash
exec "$@"
