"""Networks: DeepLab-v2 with a semantic and a latent ASPP head, and the discriminators of both baselines."""
