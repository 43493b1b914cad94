"""Reading prepared data sets: the on-disk layout, the loader, class names and palettes, splits.

Training imports this package only; making the layout (downloads, archives, conversions, the demo
generator, checks) lives in ``latentseg.prepare``, which this package never imports.
"""
