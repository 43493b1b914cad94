"""Networks: DeepLab-v2 with a semantic and a latent ASPP head, the discriminator, the image classifier."""

from latentseg.models.deeplab import DeepLabV2, build_segmenter
from latentseg.models.discriminator import Discriminator

__all__ = ["DeepLabV2", "Discriminator", "build_segmenter"]
