"""ROS 2 messages <-> numpy arrays, for rclpy and rosbags message objects alike.

rclpy message classes and the classes of a ``rosbags`` typestore have the same field names;
they differ in how arrays are held (rclpy: ``array.array``/numpy for fixed arrays; rosbags:
numpy everywhere) and in their constructors (rosbags needs every field).
:class:`~stereo_depth_ros.msgs.types.MessageTypes` hides both differences, so the node and the
bag tools build messages with the same functions. One module per job:

* :mod:`.types` - the message classes, time stamps and headers;
* :mod:`.images` - ``sensor_msgs/Image`` <-> arrays (encodings, row padding, byte order);
* :mod:`.stereo` - disparity, depth and camera_info messages;
* :mod:`.points` - ``sensor_msgs/PointCloud2``;
* :mod:`.obstacle` - the nearest obstacle's mask and ``sensor_msgs/Range``;
* :mod:`.transforms` - ``geometry_msgs/TransformStamped``.

Conventions (documented in docs/bags.md):

* Images follow ``sensor_msgs/Image``: ``step`` bytes per row (rows may be padded), 16- and
  32-bit data in the byte order ``is_bigendian`` says.
* ``stereo_msgs/DisparityImage`` holds ``d = x_l - x_r - (cx_l - cx_r)`` in a 32FC1 image,
  ``f`` = fx (px), ``t`` = baseline (m, positive), so depth is ``f * t / d``. Unknown pixels are
  written as ``min_disparity - 1`` (the definition: values below ``min_disparity`` are invalid).
* The nearest obstacle is published as ``sensor_msgs/Range`` (``range`` = distance in metres,
  ``+inf`` when nothing is within ``max_range``, as REP 117 says).
"""
