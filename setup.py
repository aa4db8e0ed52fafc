"""ament_python / setuptools build of stereo_depth_ros."""

from glob import glob

from setuptools import find_namespace_packages, setup

package_name = 'stereo_depth_ros'

setup(
    name=package_name,
    version='0.1.0',
    # Namespace packages: sample_data's folders hold data only, and listing them keeps
    # setuptools from warning that they are importable yet absent from `packages`.
    packages=find_namespace_packages(include=[package_name, package_name + '.*']),
    package_data={package_name: ['sample_data/**/*', 'py.typed']},
    include_package_data=True,
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml', 'LICENSE']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config',
         glob('config/*.yaml') + glob('config/*.rviz')),
        # Not the copies an export keeps of what it replaced (<name>.previous[-N].*).
        ('share/' + package_name + '/models',
         [path for path in glob('models/*.safetensors') + glob('models/*.yaml')
          if '.previous' not in path]),
    ],
    python_requires='>=3.10',
    install_requires=[
        'setuptools',
        'numpy>=1.23',
        'opencv-python-headless>=4.6,<5',
        'torch>=2.1',  # the README and `make install` install torch==2.13.0 first
        'safetensors>=0.4',
        'PyYAML>=6.0',
        'tqdm>=4.60',
        'matplotlib>=3.5',
        'Pillow>=9.0',
        'rosbags>=0.10',
        'psutil>=5.8',
    ],
    extras_require={'test': ['pytest>=7', 'flake8>=6', 'pydocstyle>=6', 'mypy>=1.8',
                             'types-PyYAML', 'types-psutil', 'types-tqdm']},
    zip_safe=False,  # sample_data, models and configs are read as files
    maintainer='stereo_depth_ros developers',
    maintainer_email='stereo-depth-ros@users.noreply.github.com',
    description='Learned and classical stereo disparity, metric depth and nearest-obstacle '
                'segmentation for ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'stereo-depth = stereo_depth_ros.cli:main',
            'depth_node = stereo_depth_ros.node_entry:main',
        ],
    },
)
