"""edge_vision_core: ROS-free core library of edge_vision (ament_python and pip-installable)."""

from setuptools import find_packages, setup

PACKAGE = 'edge_vision_core'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['web/static/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
    ],
    python_requires='>=3.10',
    # numpy/OpenCV come from the distro (rosdep keys in package.xml) or from
    # tools/requirements/python.txt; listing opencv-python here would shadow a distro's cv2.
    install_requires=['setuptools', 'numpy', 'scipy', 'PyYAML'],
    extras_require={
        'opencv': ['opencv-python-headless'],
        'onnxruntime': ['onnxruntime'],
        'openvino': ['openvino'],
        'litert': ['ai-edge-litert'],
        'mqtt': ['paho-mqtt>=2'],
        'bag': ['mcap', 'mcap-ros2-support'],
        'web': ['aiohttp'],
        'foxglove': ['foxglove-sdk'],
    },
    zip_safe=False,
    maintainer='edge_vision developers',
    maintainer_email='edge-vision@users.noreply.github.com',
    description='ROS-free core library of edge_vision',
    license='Apache-2.0',
)
