"""Data sets: the prepared on-disk layout, the embedded demo generator, real-data preparation, splits."""
