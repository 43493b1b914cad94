"""Networks: DeepLab-v2 with a semantic and a latent ASPP head, the discriminators (ours, s4GAN's), the image
classifier."""

from latentseg.models.deeplab import DeepLabV2, build_segmenter
from latentseg.models.discriminator import Discriminator
from latentseg.models.s4gan_discriminator import S4GANDiscriminator

__all__ = ["DeepLabV2", "Discriminator", "S4GANDiscriminator", "build_segmenter"]
