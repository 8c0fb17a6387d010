# edge_vision on NVIDIA Jetson (JetPack 6 = L4T r36, Ubuntu 22.04 -> ROS 2 Humble), with CUDA
# and TensorRT from JetPack: ONNX Runtime's CUDA / TensorRT execution providers, and native
# TensorRT engines through the `tensorrt` Python bindings.
#
#   docker build -f docker/jetson.Dockerfile -t edge_vision:jetson .      # on the Jetson
#   docker run --rm -it --runtime nvidia --net=host --ipc=host edge_vision:jetson
#
# ORT_INDEX: a pip index with onnxruntime-gpu wheels built for this JetPack (NVIDIA's Jetson AI
# Lab index by default); check it matches your JetPack release.
ARG L4T_IMAGE=nvcr.io/nvidia/l4t-jetpack:r36.4.0
FROM ${L4T_IMAGE}

ARG ORT_INDEX=https://pypi.jetson-ai-lab.dev/jp6/cu126
ENV ROS_DISTRO=humble
ENV DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /ws

# ROS 2 Humble from packages.ros.org, plus the build tools.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl gnupg2 lsb-release ca-certificates \
 && curl -sSL https://raw.githubusercontent.com/ros/rosdistro/master/ros.key \
      -o /usr/share/keyrings/ros-archive-keyring.gpg \
 && echo "deb [signed-by=/usr/share/keyrings/ros-archive-keyring.gpg] \
http://packages.ros.org/ros2/ubuntu $(lsb_release -cs) main" > /etc/apt/sources.list.d/ros2.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends ros-humble-ros-base python3-colcon-common-extensions \
      python3-rosdep python3-pip python3-libnvinfer \
 && rm -rf /var/lib/apt/lists/*

COPY src/edge_vision_core/package.xml src/edge_vision_core/package.xml
COPY src/edge_vision_models/package.xml src/edge_vision_models/package.xml
COPY src/edge_vision/package.xml src/edge_vision/package.xml
RUN apt-get update \
 && rosdep init \
 && rosdep update --rosdistro humble \
 && rosdep install --from-paths src --ignore-src -y --rosdistro humble \
 && rm -rf /var/lib/apt/lists/*

# GPU ONNX Runtime for JetPack (keeps Ubuntu's numpy, which the ROS messages are built against);
# paho-mqtt 2.x for the MQTT bridge (Ubuntu 22.04's python3-paho-mqtt is 1.6); faiss-cpu for the
# anomaly memory bank's HNSW search.
RUN NUMPY="$(python3 -c 'import numpy; print(numpy.__version__)')" \
 && echo "numpy==${NUMPY}" > /tmp/numpy-constraint.txt \
 && python3 -m pip install --no-cache-dir -c /tmp/numpy-constraint.txt \
      --extra-index-url "${ORT_INDEX}" onnxruntime-gpu "paho-mqtt>=2" faiss-cpu

COPY src /ws/src
COPY launch /ws/launch
COPY config /ws/config
COPY colcon.meta /ws/colcon.meta
RUN source /opt/ros/humble/setup.bash \
 && colcon build --base-paths src --merge-install --event-handlers console_direct-

COPY docker/entrypoint.sh /entrypoint.sh
ENTRYPOINT ["/entrypoint.sh"]
CMD ["ros2", "launch", "edge_vision", "detect.launch.py", "device:=tensorrt"]
