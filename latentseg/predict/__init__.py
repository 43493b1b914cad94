"""A trained run on any image (``latentseg predict``), and Figure 1's arrays."""
