"""Learned disparity networks (plain torch ``nn.Module``s, one module per architecture).

See :mod:`stereo_depth_ros.networks.common` for the shared input/output conventions. Each
architecture's module registers its backend record
(:class:`~stereo_depth_ros.backends.record.BackendRecord`) when imported; the registry
imports it on first use, so this package does not import them all.
"""
