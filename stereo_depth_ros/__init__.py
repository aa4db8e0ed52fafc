"""stereo_depth_ros: stereo disparity, metric depth and nearest-obstacle segmentation."""

__version__ = '0.1.0'
