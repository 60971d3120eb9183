"""Feature networks for the feature-level reconstruction loss (paper eq. 9).

The paper uses VGG16's relu3_3. ImageNet weights cannot be downloaded on the machines this project
trains on, so the default is :class:`RandomConvFeatures`: a fixed, seeded, randomly initialised
three-stage convolutional network (no download, no training, identical on every machine for a given
seed). Random convolutional features keep a perceptual loss sensitive to local structure (edges,
texture) rather than to per-pixel colour; the paper notes that VGG can be replaced by a self-supervised
network. Users who have VGG16 weights (converted to safetensors) can pass them to :class:`VGG16Features`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import WeightsError

#: ImageNet normalisation used by VGG16.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class RandomConvFeatures(nn.Module):
    """Fixed random conv features: (B, 3, 64, 64) in [0, 1] -> (B, 4 width, 16, 16). Parameters are frozen."""

    def __init__(self, seed: int = 0, width: int = 16) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(width, width * 2, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(width * 2, width * 2, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(width * 2, width * 4, 3, 2, 1), nn.ReLU(),
        )
        with torch.no_grad():
            for m in self.net:
                if isinstance(m, nn.Conv2d):
                    fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                    assert m.bias is not None
                    m.bias.zero_()
        self.requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images * 2.0 - 1.0)


def vgg16_layers() -> nn.Sequential:
    """The convolutional part of VGG16 as torchvision builds it (``vgg16().features``: the same modules at the
    same indices, so its state dict loads), built here so that the SDK needs no torchvision."""
    layers: list[nn.Module] = []
    channels = 3
    for width in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(width, int)
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """VGG16 up to relu3_3 (B, 256, 16, 16) from a user-supplied safetensors file of torchvision's vgg16."""

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        from safetensors.torch import load_file

        path = Path(weights)
        if path.suffix != ".safetensors":
            raise WeightsError(f"{path}: VGG16 weights must be a .safetensors file "
                               "(pickled files are refused)")
        try:
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises several types for corrupt files
            raise WeightsError(f"{path}: cannot read VGG16 weights ({exc})") from exc
        features = vgg16_layers()
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        try:
            features.load_state_dict(feats, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{path}: not torchvision vgg16 weights ({exc})") from exc
        self.net = features[:16]
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        return self.net((images - self.mean) / self.std)


class MTCNNFeatures(nn.Module):
    """Face-trained features from MTCNN's ONet (its weights ship with the SDK, nothing downloaded).

    ONet's first two convolution stages (conv, PReLU, max-pool, twice): (B, 3, 64, 64) in [0, 1] -> (B, 64,
    14, 14). ONet was trained to find faces and their landmarks, so these filters respond to facial
    structure (eyes, nose, mouth edges) rather than to arbitrary texture. The weights are facenet-pytorch's
    ``onet.pt``, read from the SDK's safetensors copy (:mod:`latentface_sdk.mtcnn`). ONet's weights were
    converted from a model trained on transposed images, so the input is transposed in and the features
    transposed back (the feature map stays aligned with the image for the loss's confidence map). Parameters
    are frozen.

    ``state``: the network's own state dict (``net.state_dict()``, as a training bundle carries it,
    :mod:`latentface_sdk.train.bundle`) instead of the shipped file.
    """

    def __init__(self, state: Mapping[str, Tensor] | None = None) -> None:
        super().__init__()
        # ONet's conv1, prelu1, pool1, conv2, prelu2, pool2 (latentface_sdk.mtcnn.ONet).
        self.net = nn.Sequential(nn.Conv2d(3, 32, kernel_size=3), nn.PReLU(32),
                                 nn.MaxPool2d(3, 2, ceil_mode=True),
                                 nn.Conv2d(32, 64, kernel_size=3), nn.PReLU(64),
                                 nn.MaxPool2d(3, 2, ceil_mode=True))
        try:
            self.net.load_state_dict(dict(state) if state is not None else _onet_state(), strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"MTCNN feature weights do not match ONet's first two stages ({exc})") from exc
        self.requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        x = (images * 255.0 - 127.5) * 0.0078125  # MTCNN's input normalisation
        return self.net(x.transpose(-1, -2)).transpose(-1, -2)


def _onet_state() -> dict[str, Tensor]:
    """ONet's first two stages from the shipped MTCNN weights, keyed as :class:`MTCNNFeatures`'s ``net``."""
    from ..mtcnn import mtcnn_state

    state = mtcnn_state("onet")  # WeightsError names the file when it is missing or unreadable
    names = {"conv1": "0", "prelu1": "1", "conv2": "3", "prelu2": "4"}
    return {f"{names[k.split('.')[0]]}.{k.split('.', 1)[1]}": v for k, v in state.items()
            if k.split(".")[0] in names}


def build_feature_network(kind: str = "random-conv", weights: str | Path | None = None, seed: int = 0,
                          state: Mapping[str, Tensor] | None = None) -> nn.Module:
    """The feature network named ``kind``: 'random-conv', 'mtcnn' or 'vgg16' (which needs ``weights``).

    ``state``: the 'mtcnn' network's weights as :class:`MTCNNFeatures` takes them (from a training bundle).
    """
    if kind == "random-conv":
        return RandomConvFeatures(seed=seed)
    if kind == "mtcnn":
        return MTCNNFeatures(state)
    if kind == "vgg16":
        if weights is None:
            raise WeightsError("the 'vgg16' feature network needs a weights file "
                               "(vgg16 state dict as safetensors)")
        return VGG16Features(weights)
    raise ValueError(f"unknown feature network {kind!r} (use 'random-conv', 'mtcnn' or 'vgg16')")
