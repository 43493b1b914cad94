"""latentseg: semi-supervised semantic segmentation with latent classes (Zatsarynna, Sawatzky, Gall).

The package is the method as a library; it knows nothing of DVC. See README.md for the pipeline.
"""

__version__ = "0.1.0"
