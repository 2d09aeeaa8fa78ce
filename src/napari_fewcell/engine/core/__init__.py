"""Shared infrastructure of every workflow: errors, devices, progress, boxes and tiles, images,
annotations, augmentation, losses, files and model files. Imports nothing above itself."""
