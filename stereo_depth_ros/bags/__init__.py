"""rosbag2 tools: KITTI to bag, reading/pairing stereo topics, offline processing."""

from .from_kitti import KittiBagSummary, kitti_to_bag, topic_names
from .process import ProcessSummary, process_bag
from .reader import BagInput, StereoTopics, find_stereo_images, find_stereo_topics
from .writer import DISTROS, METADATA_VERSION, STORAGE_PLUGINS, BagWriter

__all__ = ['BagInput', 'BagWriter', 'DISTROS', 'KittiBagSummary', 'METADATA_VERSION',
           'ProcessSummary', 'STORAGE_PLUGINS', 'StereoTopics', 'find_stereo_images',
           'find_stereo_topics',
           'kitti_to_bag', 'process_bag', 'topic_names']
