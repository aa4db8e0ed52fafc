"""Datasets, synthetic scene generator and augmentation."""
