"""Tiny architecture arguments of every learned network, shared by the fast tests."""

TINY = {
    'dispnet': {'width': 0.125, 'max_disparity': 64},
    'dispnetc': {'width': 0.125, 'max_disparity': 64},
    'squeezeseg': {'width': 0.25, 'max_disparity': 64},
    'dispnet_qr': {'width': 0.125, 'max_disparity': 64, 'num_bins': 4},
    'costnet': {'width': 0.25, 'max_disparity': 64},
    'costnet_fast': {'width': 0.25, 'max_disparity': 64},
}
