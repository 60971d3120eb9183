"""Building, loading and saving a :class:`~latentface_sdk.FaceEncoder`: random weights from a config, a
model folder or Hub repo in (``config.json`` + ``model.safetensors``, safetensors only, checksum checked),
a folder or Hub repo out. A mixin, so that ``encoder.py`` holds only what the model does.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import Tensor, nn

from . import hub
from .config import ModelConfig
from .devices import resolve_device
from .errors import WeightsError
from .model_folder import (
    AUTOENCODER,
    CARD_NAME,
    HEADS,
    PREFIXES,
    RDM_SHAPE,
    RDM_TEXTURE,
    WEIGHTS_NAME,
    load_model_folder,
    load_part,
    prefixed,
    save_model_folder,
    stray_keys,
)
from .models.autoencoder import LatentAutoencoder
from .models.heads import AnswerHeads
from .models.rdm import RepresentationDiffusion
from .threads import Threads, choose_threads

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .hub import PushOptions

__all__ = ["PretrainedMixin"]

M = TypeVar("M", bound="PretrainedMixin")


class PretrainedMixin:
    """``from_config``, ``from_pretrained``, ``load_tensors``, ``save_pretrained`` and ``push_to_hub`` of a
    model built as ``cls(config)`` with the parts ``autoencoder``, ``rdm_texture`` and ``rdm_shape``."""

    config: ModelConfig
    autoencoder: LatentAutoencoder
    rdm_texture: RepresentationDiffusion
    rdm_shape: RepresentationDiffusion
    heads: AnswerHeads
    threads: Threads

    if TYPE_CHECKING:  # the model class defines it; declared so that cls(config) type-checks

        def __init__(self, config: ModelConfig) -> None: ...

    @classmethod
    def from_config(cls: type[M], config: ModelConfig | None = None, *,
                    device: str | torch.device = "cpu") -> M:
        """A model with randomly initialised weights (seeded by torch's global RNG) for ``config``."""
        cfg = copy.deepcopy(config) if config is not None else ModelConfig()
        cfg.checksum = None
        return cls(cfg).to(resolve_device(device))  # type: ignore[attr-defined]

    @classmethod
    def from_pretrained(
        cls: type[M],
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        device: str | torch.device = "auto",
        dtype: torch.dtype = torch.float32,
        threads: Threads = "auto",
    ) -> M:
        """Load a model: the bundled default (no argument), a bundled name, a folder, or a Hub repo id.

        The look-up is :func:`latentface_sdk.hub.resolve` (``revision``, ``cache_dir`` and
        ``local_files_only`` apply to Hub ids; ``HF_HUB_OFFLINE=1`` is honoured). The weights are read
        with safetensors only and their SHA-256 checked against ``config.json``. ``device="auto"`` uses
        CUDA when available and logs the choice; ``dtype`` is the parameters' floating type. ``threads``:
        CPU threads per batch, ``"auto"`` (the cores other running processes leave free, re-checked every
        batch), a fixed count, or None for torch's own setting (:mod:`latentface_sdk.threads`); also the
        attribute ``enc.threads``.

        Raises:
            WeightsError: no such model, a missing, corrupt, pickled or mismatched weights file (the
                message names the file and the tensor keys); :class:`~latentface_sdk.errors.ConfigError`
                for a bad or unknown-version ``config.json``; :class:`~latentface_sdk.errors.ChecksumError`;
                :class:`~latentface_sdk.errors.OfflineError` for a Hub id not cached while offline.
        """
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating torch dtype (got {dtype!r})")
        folder = hub.resolve(name_or_path, revision=revision, cache_dir=cache_dir,
                             local_files_only=local_files_only)
        config, state = load_model_folder(folder)
        model = cls(config)
        model.load_tensors(state, source=str(folder / WEIGHTS_NAME))
        choose_threads(threads)  # validates the setting now rather than at the first call
        model.threads = threads
        return model.to(device=resolve_device(device), dtype=dtype)  # type: ignore[attr-defined]

    def load_tensors(self, state: dict[str, Tensor], *, source: str = "state dict") -> None:
        """Load a model-folder state dict (keys prefixed ``autoencoder.``, ``rdm_texture.``, ``rdm_shape.``,
        and ``heads.`` when the config has answer heads: :data:`latentface_sdk.model_folder.PREFIXES`).

        Missing, unexpected and mis-shaped tensors raise :class:`WeightsError` naming ``source`` and the keys.
        """
        stray = stray_keys(state)
        if stray:
            raise WeightsError(
                f"{source}: unexpected tensors {stray[:5]}{' ...' if len(stray) > 5 else ''} "
                f"(every key must start with one of {list(PREFIXES)})"
            )
        for prefix, module in self._parts():
            load_part(module, state, prefix, source)

    def _parts(self) -> list[tuple[str, nn.Module]]:
        parts: list[tuple[str, nn.Module]] = [(AUTOENCODER, self.autoencoder),
                                              (RDM_TEXTURE, self.rdm_texture),
                                              (RDM_SHAPE, self.rdm_shape)]
        if not self.heads.empty:  # older weights have no heads (config.heads empty): nothing to load
            parts.append((HEADS, self.heads))
        return parts

    def save_pretrained(self, folder: str | os.PathLike[str], *,
                        storage_dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``folder`` (the inverse of
        :meth:`from_pretrained`).

        The weights file is written atomically and its SHA-256 recorded in the config (and in
        ``self.config.checksum``). ``storage_dtype=torch.float16`` stores floating-point tensors at half
        size (how the bundled weights ship; the small answer heads stay float32); loading casts them back
        to the model's dtype, so outputs differ from the full-precision model only by the rounding of the
        weights. Returns the folder.
        """
        if storage_dtype is not None and not storage_dtype.is_floating_point:
            raise ValueError(f"storage_dtype must be a floating-point dtype (got {storage_dtype})")
        state: dict[str, Tensor] = {}
        for prefix, module in self._parts():
            state.update(prefixed(module, prefix))
        if storage_dtype is not None:  # the answer heads stay float32: small, and fitted to that precision
            state = {k: v.to(storage_dtype) if v.is_floating_point() and not k.startswith(HEADS) else v
                     for k, v in state.items()}
        cfg = copy.deepcopy(self.config)
        cfg.checksum = None
        out = save_model_folder(Path(os.fspath(folder)), cfg, state)
        self.config.checksum = cfg.checksum
        return out

    def push_to_hub(
        self,
        repo_id: str,
        *,
        storage_dtype: torch.dtype | None = None,
        model_card: str | None = None,
        **options: Unpack[PushOptions],
    ) -> Any:
        """Upload this model to the Hugging Face Hub as ``repo_id`` (``owner/name``); returns the
        ``CommitInfo``.

        Writes :meth:`save_pretrained` (``storage_dtype`` as there) and a ``README.md`` model card
        (``model_card``, else :func:`latentface_sdk.hub.model_card`: the Hub's YAML metadata and how to
        load it) into a temporary folder and uploads these three files with ``huggingface_hub``
        (creating the repository if needed). ``FaceEncoder.from_pretrained(repo_id)`` loads it back,
        offline too once it is in the Hub cache. ``options`` are :func:`latentface_sdk.hub.push_folder`'s
        (``private``, ``token``, ``revision``, ``commit_message``, ``create_pr``, and ``api``: an ``HfApi``
        to use instead of a new one).
        """
        with tempfile.TemporaryDirectory(prefix="latentface-push-") as tmp:
            folder = self.save_pretrained(Path(tmp) / "model", storage_dtype=storage_dtype)
            card = model_card if model_card is not None else hub.model_card(self.config, repo_id)
            (folder / CARD_NAME).write_text(card, encoding="utf-8")
            return hub.push_folder(folder, repo_id, **options)
