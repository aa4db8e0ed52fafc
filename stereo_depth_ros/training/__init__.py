"""Training of the learned backends: config, data, augmentation, losses, loop, model cards."""
