"""The node's topics: one table of output topics, from which every list of them is derived.

Each :class:`OutputTopic` names the topic (relative, under the node's namespace), its message
class (an attribute of :class:`~stereo_depth_ros.msgs.types.MessageTypes`), the
:meth:`~stereo_depth_ros.pipeline.StereoPipeline.process` output it needs and the
``publish_*`` node parameter that switches it on. The node, ``stereo-depth process-bag`` and
the pipeline configuration all read this table.
"""

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional


@dataclass(frozen=True)
class OutputTopic:
    """One output topic: name, message class, the pipeline output it needs, its switch.

    ``output`` is None for topics that need nothing beyond the disparity (and the camera).
    """

    name: str
    message: str
    output: Optional[str]
    switch: str


#: Every output topic, in publishing order.
OUTPUTS: tuple[OutputTopic, ...] = (
    OutputTopic('disparity', 'DisparityImage', None, 'publish_disparity'),
    OutputTopic('depth/image_rect', 'Image', 'depth', 'publish_depth'),
    # image_transport's rule (depth_image_proc, rviz's DepthCloud): an image's CameraInfo is
    # its sibling camera_info, with the same header.
    OutputTopic('depth/camera_info', 'CameraInfo', None, 'publish_depth'),
    OutputTopic('obstacle/mask', 'Image', 'obstacle', 'publish_obstacle'),
    OutputTopic('obstacle/range', 'Range', 'obstacle', 'publish_obstacle'),
    OutputTopic('disparity/color', 'Image', 'color', 'publish_color'),
    OutputTopic('points2', 'PointCloud2', 'points', 'publish_points'),
)
#: Output topic name -> its row of :data:`OUTPUTS`.
OUTPUT_BY_NAME: dict[str, OutputTopic] = {topic.name: topic for topic in OUTPUTS}
OUTPUT_TOPICS: tuple[str, ...] = tuple(OUTPUT_BY_NAME)

#: Input topics (relative, remappable) -> message class attribute of ``MessageTypes``.
INPUT_TOPICS: dict[str, str] = {
    'left/image_rect': 'Image',
    'right/image_rect': 'Image',
    'left/camera_info': 'CameraInfo',
    'right/camera_info': 'CameraInfo',
}
#: Name image_transport gives a compressed image stream: its base topic's plus this.
COMPRESSED_SUFFIX = '/compressed'
#: How the images arrive (node parameter ``image_transport``) -> (suffix of the image topics,
#: their message class attribute of ``MessageTypes``), as image_transport names them.
IMAGE_TRANSPORTS: dict[str, tuple[str, str]] = {
    'raw': ('', 'Image'),
    'compressed': (COMPRESSED_SUFFIX, 'CompressedImage'),
}


def input_subscriptions(transport: str) -> list[tuple[str, str, str]]:
    """Return (base topic, suffix, message class attribute) of the four inputs.

    The images of ``transport`` arrive on their base topic plus the suffix; the suffix is
    added after the base topic is resolved and remapped, as image_transport does, so that
    remapping ``left/image_rect`` moves ``left/image_rect/compressed`` along with it.
    """
    suffix, image_type = IMAGE_TRANSPORTS[transport]
    return [(topic, suffix, image_type) if kind == 'Image' else (topic, '', kind)
            for topic, kind in INPUT_TOPICS.items()]


def check_topics(topics: Iterable[str]) -> frozenset[str]:
    """Return ``topics`` as a set, or raise ValueError naming an unknown output topic."""
    chosen = frozenset(topics)
    unknown = sorted(chosen - set(OUTPUT_TOPICS))
    if unknown:
        raise ValueError(f'unknown output topic(s) {unknown}; known: {", ".join(OUTPUT_TOPICS)}')
    return chosen


def pipeline_outputs(topics: Iterable[str]) -> frozenset[str]:
    """Return the :meth:`StereoPipeline.process` outputs the given output topics need."""
    return frozenset(output for name in check_topics(topics)
                     if (output := OUTPUT_BY_NAME[name].output))


def enabled_topics(values: Mapping[str, Any]) -> frozenset[str]:
    """Return the output topics whose ``publish_*`` switch is true in parameter ``values``."""
    return frozenset(topic.name for topic in OUTPUTS if values[topic.switch])
