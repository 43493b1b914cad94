"""Making prepared data sets: downloads, release archives, VOC/SBD/Cityscapes/COCO conversion, the demo
generator and the checks of the result (``latentseg.data`` reads what this package writes).

Training stages must not import this package: each of its files would be a dependency of every run.
"""
