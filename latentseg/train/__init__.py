"""Training: the per-iteration update of each method (``step``), data streams, checkpoints, the loop."""
