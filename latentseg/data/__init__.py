"""Reading prepared data sets: the on-disk layout, the loader, class names and palettes, splits.

Training imports this package only. Making the layout (downloads, archives, conversions, the demo generator,
checks) is the job of the sibling package ``prepare``, which nothing here imports.
"""
