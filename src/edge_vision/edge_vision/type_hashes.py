"""RIHS01 type hashes of upstream message types that edge_vision relies on.

The vision_msgs values were computed from the unmodified vision_msgs 4.1.1 ``.msg`` files of
github.com/ros-perception/vision_msgs with an independent implementation of REP-2011's hash
(``rosbags.typesys.Typestore.hash_rihs01``, rosbags 0.11.9). A ``vision_msgs`` built by
``tools/setup_env.py`` must publish exactly these hashes, or nodes built against the distro
package would not talk to ours (Iron and later match types by hash). ``edge-vision doctor`` and
``test/test_interfaces.py`` compare them with what the DDS graph reports.
"""

from __future__ import annotations

UPSTREAM_TYPE_HASHES: dict[str, str] = {
    'vision_msgs/msg/BoundingBox2D':
        'RIHS01_008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f',
    'vision_msgs/msg/BoundingBox2DArray':
        'RIHS01_2464e82838009386d371b523211c21c91d74d313fcdd6788223c531d621cf691',
    'vision_msgs/msg/BoundingBox3D':
        'RIHS01_bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698',
    'vision_msgs/msg/BoundingBox3DArray':
        'RIHS01_a81938db9576b10c2eecd7c5a5da3eac496efd00221b25ed051dfbc81fb56da6',
    'vision_msgs/msg/Classification':
        'RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143',
    'vision_msgs/msg/Detection2D':
        'RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea',
    'vision_msgs/msg/Detection2DArray':
        'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968',
    'vision_msgs/msg/Detection3D':
        'RIHS01_ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b',
    'vision_msgs/msg/Detection3DArray':
        'RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018',
    'vision_msgs/msg/LabelInfo':
        'RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783',
    'vision_msgs/msg/ObjectHypothesis':
        'RIHS01_51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90',
    'vision_msgs/msg/ObjectHypothesisWithPose':
        'RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc',
    'vision_msgs/msg/Point2D':
        'RIHS01_eab0e83f44ab4de92ceaf76dd7d0e7638f2bdd1d16ffbe16c7a136c48e407247',
    'vision_msgs/msg/Pose2D':
        'RIHS01_b0b5d1d7b4c20dd4fcde3ed1d4b289a919290572007d67a97043814db25d3648',
    'vision_msgs/msg/VisionClass':
        'RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a',
    'vision_msgs/msg/VisionInfo':
        'RIHS01_95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284',
    'sensor_msgs/msg/Image':
        'RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47',
    'sensor_msgs/msg/CameraInfo':
        'RIHS01_b3dfd68ff46c9d56c80fd3bd4ed22c7a4ddce8c8348f2f59c299e73118e7e275',
    'sensor_msgs/msg/CompressedImage':
        'RIHS01_15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a',
}
