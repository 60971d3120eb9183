"""``export_onnx``: a model's encoders and its disentangle path as ONNX graphs, with a card that says what
they take.

The folder written holds ``encoder.onnx`` (:class:`~latentface_sdk.deploy.graphs.CropEncoderGraph`),
``disentangle.onnx`` (:class:`~latentface_sdk.deploy.graphs.DisentangleGraph`, both RDMs with their DDIM
steps unrolled), for models with answer heads ``identity.onnx`` and ``expression.onnx``
(:class:`~latentface_sdk.deploy.graphs.IdentityGraph`,
:class:`~latentface_sdk.deploy.graphs.ExpressionGraph`),
``config.json`` (the card, :data:`~latentface_sdk.model_folder.ONNX_CARD`: inputs and outputs of each
graph with shapes, types and value ranges, the preprocessing, the opset, the source model's name and
checksum, each file's SHA-256) and ``README.md`` (the same in prose). The batch size is dynamic in every
graph. Needs the ``onnx`` extra (``onnx``, ``onnxscript`` for torch's exporter, ``onnxruntime`` to run
the result).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._extras import install_hint
from .._version import __version__
from ..digests import file_digest
from ..model_folder import CARD_NAME, CONFIG_NAME, ONNX_CARD
from .graphs import CropEncoderGraph, DisentangleGraph, ExpressionGraph, IdentityGraph

__all__ = [
    "CONFIG_NAME",
    "DISENTANGLE_FILE",
    "ENCODER_FILE",
    "EXPRESSION_FILE",
    "IDENTITY_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "OPSET",
    "OnnxExport",
    "export_onnx",
    "onnx_card",
    "read_card",
    "require",
]

#: The card's ``format`` value (how a folder written by :func:`export_onnx` is recognised) and its
#: ``format_version``: :data:`~latentface_sdk.model_folder.ONNX_CARD` reads and writes the card.
FORMAT = ONNX_CARD.name
FORMAT_VERSION = ONNX_CARD.version
#: The ONNX opset of the exported graphs (onnxruntime 1.17 and later run it).
OPSET = 18
ENCODER_FILE = "encoder.onnx"
DISENTANGLE_FILE = "disentangle.onnx"
#: Written only for models with answer heads (``config.heads``): the identity embedding and the
#: expression probabilities.
IDENTITY_FILE = "identity.onnx"
EXPRESSION_FILE = "expression.onnx"

_EXTRA = install_hint("onnx")


def require(module: str) -> Any:
    """Import an optional dependency of the ONNX path, or raise an :class:`ImportError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"the ONNX path needs the package {module!r}: {_EXTRA}") from exc


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote: the ``folder``, its two graph files and the card (``config``)."""

    folder: Path
    encoder: Path
    disentangle: Path
    config: dict[str, Any]


def _tensor(name: str, dtype: str, shape: list[int | str], values: str) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "shape": shape, "values": values}


def onnx_card(model_config: Any, *, steps: int, opset: int = OPSET) -> dict[str, Any]:
    """The ``config.json`` of an export of a model with :class:`~latentface_sdk.config.ModelConfig`
    ``model_config``."""
    d = model_config.autoencoder.latent_dim
    size = model_config.crop.size
    crop = model_config.crop
    heads = model_config.heads
    latent = f"float32 stage-1 latent ({d} values)"
    card: dict[str, Any] = ONNX_CARD.stamp({
        "opset": opset,
        "exported_by": f"latentface-sdk {__version__}",
        "model": {"name": model_config.name, "checksum": model_config.checksum},
        "latent_dim": d,
        "crop": crop.to_dict(),
        "preprocessing": (
            f"Each input is one face crop of {size}x{size} RGB pixels as uint8 (H x W x C, values 0-255), "
            f"cut the way latentface-sdk cuts faces: an MTCNN box grown by margin {crop.margin} of its size "
            f"on each side, made square and resized to {size} px; a photo that is already a centred face "
            "crop can be resized directly. The graph itself scales the pixels to [-1, 1] and reorders them "
            "to channels-first."
        ),
        "rdm": {"sample_steps": steps, "sample_init": model_config.rdm.sample_init},
        "heads": {"identity_dim": heads.identity_dim, "identity_input": heads.identity_input,
                  "identity_threshold": heads.identity_threshold,
                  "expression_classes": list(heads.expression_classes),
                  "expression_grey": heads.expression_grey},
        "graphs": {
            "encoder": {
                "file": ENCODER_FILE,
                "inputs": [_tensor("crops", "uint8", ["batch", size, size, 3], "RGB pixels 0-255")],
                "outputs": [
                    _tensor("texture", "float32", ["batch", d], "Z_t, " + latent),
                    _tensor("shape", "float32", ["batch", d], "Z_s, " + latent),
                    _tensor("pose", "float32", ["batch", 6],
                            "tx, ty, tz (units of the face depth), then yaw, pitch, roll in degrees"),
                    _tensor("light", "float32", ["batch", 4],
                            "ambient, diffuse in [0, 1]; direction x, y in [-1, 1]"),
                ],
            },
            "disentangle": {
                "file": DISENTANGLE_FILE,
                "inputs": [
                    _tensor("texture", "float32", ["batch", d],
                            "Z_exp of the texture: the encoder's texture"),
                    _tensor("shape", "float32", ["batch", d], "Z_exp of the shape: the encoder's shape"),
                    _tensor("noise_texture", "float32", ["batch", d],
                            "z_T of the texture RDM: zeros for sample_init 'zero', "
                            "standard normal for 'noise'"),
                    _tensor("noise_shape", "float32", ["batch", d], "z_T of the shape RDM, likewise"),
                ],
                "outputs": [
                    _tensor("identity_texture", "float32", ["batch", d],
                            "Z_id of the texture (DDIM, unrolled)"),
                    _tensor("identity_shape", "float32", ["batch", d], "Z_id of the shape"),
                    _tensor("expression_texture", "float32", ["batch", d],
                            "Δexp = texture - identity_texture"),
                    _tensor("expression_shape", "float32", ["batch", d], "Δexp = shape - identity_shape"),
                ],
            },
        },
    })
    if heads.identity_dim > 0:
        card["graphs"]["identity"] = {
            "file": IDENTITY_FILE,
            "inputs": [_tensor("texture", "float32", ["batch", d], "the encoder's texture"),
                       _tensor("shape", "float32", ["batch", d], "the encoder's shape")],
            "outputs": [_tensor("identity_embedding", "float32", ["batch", heads.identity_dim],
                                "unit-length identity embedding; cosine >= "
                                f"{heads.identity_threshold:.4f} means the same person")],
        }
    if heads.expression_classes:
        card["graphs"]["expression"] = {
            "file": EXPRESSION_FILE,
            "inputs": [_tensor("crops", "uint8", ["batch", size, size, 3], "RGB pixels 0-255")],
            "outputs": [_tensor("expression_probabilities", "float32",
                                ["batch", len(heads.expression_classes)],
                                "probabilities of " + ", ".join(heads.expression_classes))],
        }
    return card


def _readme(card: dict[str, Any]) -> str:
    lines = [
        f"# LatentFace ONNX export of `{card['model']['name']}`",
        "",
        f"Written by {card['exported_by']} (opset {card['opset']}); weights checksum "
        f"`{card['model']['checksum']}`. Load with `latentface_sdk.OnnxFaceEncoder.from_pretrained(folder)` "
        "or with onnxruntime alone.",
        "",
        "## Preprocessing",
        "",
        card["preprocessing"],
        "",
    ]
    for name, graph in card["graphs"].items():
        lines += [f"## `{graph['file']}` ({name})", "", "| | name | dtype | shape | values |",
                  "|---|---|---|---|---|"]
        for kind in ("inputs", "outputs"):
            for t in graph[kind]:
                shape = "(" + ", ".join(str(s) for s in t["shape"]) + ")"
                lines.append(f"| {kind[:-1]} | `{t['name']}` | {t['dtype']} | {shape} | {t['values']} |")
        lines.append("")
    steps = card["rdm"]["sample_steps"]
    lines += [
        f"The disentangle graph runs {steps} DDIM steps of each RDM. The model's default start is "
        f"`{card['rdm']['sample_init']}`; with the same noise it returns what PyTorch's `disentangle` "
        "returns.",
        "",
    ]
    return "\n".join(lines)


def _export(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path, inputs: list[str],
            outputs: list[str], opset: int) -> None:
    batch = torch.export.Dim("batch", min=1)
    # The exporter reports its progress on stdout and the graph optimiser logs every constant it does not
    # fold: neither says anything to the caller of a successful export, and a failed one raises.
    quiet = logging.getLogger("onnxscript")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, args, str(path), input_names=inputs, output_names=outputs,
                dynamic_shapes=tuple({0: batch} for _ in args), opset_version=opset, dynamo=True,
                external_data=False,
            )
    finally:
        quiet.setLevel(level)


def export_onnx(
    model: Any = None,
    out: str | os.PathLike[str] = "latentface-onnx",
    *,
    steps: int | None = None,
    opset: int = OPSET,
    overwrite: bool = False,
) -> OnnxExport:
    """Export a model to ONNX: ``encoder.onnx``, ``disentangle.onnx`` (and, for a model with answer heads,
    ``identity.onnx`` and ``expression.onnx``), ``config.json`` and ``README.md`` in ``out``.

    ``model`` is a :class:`~latentface_sdk.FaceEncoder` or anything its ``from_pretrained`` takes (None: the
    bundled default). ``steps``: the DDIM steps unrolled in the disentangle graph (default: the model's
    ``rdm.sample_steps``, 5). Both graphs pass ``onnx.checker``; the files are written to a temporary
    folder first and moved into place, so a failed export leaves no half-written folder. An existing
    export in ``out`` is replaced only with ``overwrite=True``; any other non-empty ``out`` is refused.

    Raises:
        ImportError: ``onnx`` or ``onnxscript`` is not installed (the message names the extra).
        FileExistsError: ``out`` holds files and ``overwrite`` is False (or it is not an export).
        ValueError: ``steps`` or ``opset`` out of range.
    """
    onnx = require("onnx")
    require("onnxscript")
    from ..encoder import FaceEncoder

    if not isinstance(opset, int) or isinstance(opset, bool) or not 18 <= opset <= 23:
        raise ValueError(f"opset must be an integer from 18 to 23 (got {opset!r})")
    enc = model if isinstance(model, FaceEncoder) else FaceEncoder.from_pretrained(model, device="cpu")
    n = enc.config.rdm.sample_steps if steps is None else steps
    enc.rdm_texture.ddim_scheduler(n)  # validates steps
    dest = Path(out)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        if not overwrite:
            raise FileExistsError(f"{dest} exists and is not empty; pass overwrite=True (--overwrite) to "
                                  "replace an export")
        if not _is_export(dest):
            raise FileExistsError(f"{dest} is not an ONNX export of latentface-sdk; refusing to replace it")
    # Export from a CPU float32 copy in the plain memory layout, so that the caller's model is untouched.
    cpu = FaceEncoder(enc.config)
    cpu.load_state_dict({k: v.detach().to("cpu", torch.float32) for k, v in enc.state_dict().items()})
    cpu.use_channels_last(False).eval()
    card = onnx_card(cpu.config, steps=n, opset=opset)
    d = cpu.config.autoencoder.latent_dim
    size = cpu.config.crop.size
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A plain mkdir (not mkdtemp, which makes it owner-only): the export gets the mode of any folder the
    # user creates (0755 under umask 022), since it becomes ``dest`` as it is.
    tmp = dest.parent / f".onnx-export-{secrets.token_hex(8)}"
    tmp.mkdir()
    try:
        g = torch.Generator().manual_seed(0)
        crops = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8, generator=g)
        _export(CropEncoderGraph(cpu.autoencoder).eval(), (crops,), tmp / ENCODER_FILE, ["crops"],
                ["texture", "shape", "pose", "light"], opset)
        # Four distinct tensors: the exporter would merge inputs given as one object.
        lat = tuple(torch.randn(2, d, generator=g) for _ in range(4))
        _export(DisentangleGraph(cpu.rdm_texture, cpu.rdm_shape, n).eval(), lat, tmp / DISENTANGLE_FILE,
                ["texture", "shape", "noise_texture", "noise_shape"],
                ["identity_texture", "identity_shape", "expression_texture", "expression_shape"], opset)
        heads = cpu.heads
        if heads.identity is not None:
            _export(IdentityGraph(cpu.rdm_texture, cpu.rdm_shape, n, heads.identity,
                                  cpu.config.heads.identity_input).eval(), lat[:2], tmp / IDENTITY_FILE,
                    ["texture", "shape"], ["identity_embedding"], opset)
        if heads.expression is not None:
            _export(ExpressionGraph(cpu.autoencoder, heads.expression,
                                    cpu.config.heads.expression_grey).eval(), (crops,),
                    tmp / EXPRESSION_FILE, ["crops"], ["expression_probabilities"], opset)
        for key, graph in card["graphs"].items():
            onnx.checker.check_model(str(tmp / graph["file"]))
            card["graphs"][key]["sha256"] = file_digest(tmp / graph["file"])
        ONNX_CARD.write(tmp / CONFIG_NAME, card, indent=2)
        (tmp / CARD_NAME).write_text(_readme(card), encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return OnnxExport(dest, dest / ENCODER_FILE, dest / DISENTANGLE_FILE, card)


def _is_export(folder: Path) -> bool:
    return ONNX_CARD.recognises(folder / CONFIG_NAME)


def read_card(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of an ONNX export folder, checked
    (:meth:`ONNX_CARD.read <latentface_sdk.model_folder.ManifestFormat.read>`); raises
    :class:`~latentface_sdk.errors.OnnxFormatError` for a missing or unreadable card, another format or a
    ``format_version`` this package does not read."""
    return ONNX_CARD.read(Path(folder) / CONFIG_NAME)

