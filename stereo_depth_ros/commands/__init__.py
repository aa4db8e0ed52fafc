"""Sub-commands of the `stereo-depth` command line, one module each."""
