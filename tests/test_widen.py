"""latentface_sdk.train.widen: wider encoders that start out computing what the trained ones do."""

from __future__ import annotations

import pytest
import torch

from latentface_sdk.config import AutoencoderConfig
from latentface_sdk.errors import ConfigError
from latentface_sdk.models.autoencoder import LatentAutoencoder
from latentface_sdk.train.widen import widen_encoders

ENCODERS = ("texture_encoder", "shape_encoder", "pose_encoder", "light_encoder")


def _trained(width: int = 16) -> LatentAutoencoder:
    torch.manual_seed(1)
    model = LatentAutoencoder(AutoencoderConfig(width=width, decoder_width=8, latent_dim=32))
    with torch.no_grad():  # move every weight off its initial value, as training would
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_wider_encoders_compute_the_same() -> None:
    model = _trained()
    wide = widen_encoders(model, 32).eval()
    assert wide.cfg.width == 32 and model.cfg.width == 16
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        for name in ENCODERS:
            torch.testing.assert_close(getattr(wide, name)(x), getattr(model, name)(x), atol=1e-5, rtol=1e-4)
        # the intermediate maps grow: the old channels first, unchanged
        _, maps_old = model.texture_encoder.forward_blocks(x)
        _, maps_new = wide.texture_encoder.forward_blocks(x)
    for old, new in zip(maps_old, maps_new, strict=True):
        assert new.shape[1] == 2 * old.shape[1]
        torch.testing.assert_close(new[:, : old.shape[1]], old, atol=1e-5, rtol=1e-4)
    n_wide = sum(p.numel() for p in wide.texture_encoder.parameters())
    assert n_wide > 2 * sum(p.numel() for p in model.texture_encoder.parameters())
    for name in ("albedo_decoder", "depth_decoder", "confidence"):
        for a, b in zip(getattr(wide, name).state_dict().values(), getattr(model, name).state_dict().values(),
                        strict=True):
            assert torch.equal(a, b)


def test_new_channels_learn() -> None:
    """The zero weights that carry the new channels onward get gradients, so training grows them in."""
    wide = widen_encoders(_trained(), 32).train()
    head = wide.texture_encoder.net[-1]
    assert isinstance(head, torch.nn.Conv2d)
    assert torch.count_nonzero(head.weight[:, 128:]) == 0  # 8 x 16 old input channels, then the new ones
    wide.texture_encoder(torch.rand(4, 3, 64, 64) * 2 - 1).square().sum().backward()
    assert head.weight.grad is not None and head.weight.grad[:, 128:].abs().sum() > 0


@pytest.mark.parametrize("width", [8, 24])
def test_refuses_widths_that_would_change_the_model(width: int) -> None:
    with pytest.raises(ConfigError, match="widen_encoders"):
        widen_encoders(_trained(), width)
