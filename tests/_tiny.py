"""The tiny test model shared by the test files: full-size latents with narrow networks (fast on a CPU)."""

from __future__ import annotations

from latentface_sdk.config import AutoencoderConfig, ModelConfig, RDMConfig

#: Narrow stage-1 networks (the autoencoder fields a test recipe sets).
TINY_AE = {"width": 8, "decoder_width": 8}


def tiny_config(name: str = "tiny-test", latent_dim: int = 256, **autoencoder: object) -> ModelConfig:
    """A :class:`ModelConfig` with narrow encoders/decoders and a small RDM (``latent_dim`` as given)."""
    return ModelConfig(
        name=name,
        autoencoder=AutoencoderConfig(**{**TINY_AE, "latent_dim": latent_dim, **autoencoder}),  # type: ignore[arg-type]
        rdm=RDMConfig(latent_dim=latent_dim, channels=(32, 16, 24), time_embed_dim=16),
    )
