"""edge_vision_models: model files and manifests of edge_vision (ament_python, pip-installable)."""

from setuptools import find_packages, setup

PACKAGE = 'edge_vision_models'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    # The models travel as package data, found with importlib.resources both pip- and
    # colcon-installed.
    package_data={PACKAGE: ['models/*.onnx', 'models/*.tflite', 'models/*.xml',
                            'models/*.bin', 'models/*.yaml',
                            'models/*.json', 'models/*.txt', 'models/LICENSE*',
                            'models/NOTICE',
                            'samples/*.mp4', 'samples/NOTICE']},
    include_package_data=True,
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
    ],
    python_requires='>=3.10',
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='edge_vision developers',
    maintainer_email='edge-vision@users.noreply.github.com',
    description='Model files and manifests of edge_vision (the embedded default detector '
                'and the PP-OCR text models)',
    license='Apache-2.0 AND MIT',
)
