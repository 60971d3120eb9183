"""Where a model's files are: a name, a folder or a Hugging Face Hub id -> a local folder.

:func:`resolve` looks, in this order:

1. ``None``: the bundled default, :data:`DEFAULT_MODEL` (``latentface-cpu-small``);
2. a bundled name: a sub-folder of :func:`latentface_sdk._paths.bundled_weights_dir`;
3. an existing local folder holding ``config.json`` and ``model.safetensors``;
4. a Hub repo id ``owner/name``: :func:`huggingface_hub.snapshot_download` of ``config.json``,
   ``model.safetensors`` and ``README.md`` (at ``revision`` when given) into the Hub cache
   (``cache_dir``, else ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``).

:func:`push_folder` is the way back: it uploads a model folder (``config.json``, ``model.safetensors``
and a ``README.md`` model card with the Hub's YAML metadata) with :class:`huggingface_hub.HfApi`;
:meth:`latentface_sdk.FaceEncoder.push_to_hub` calls it.

Bundled names and local folders never touch the network. For Hub ids, ``local_files_only=True`` or the
environment variable ``HF_HUB_OFFLINE=1`` use the cache only; a repo id that is not cached then raises
:class:`~latentface_sdk.errors.OfflineError`, which names the id and the cache folder searched. Nothing
here reads the weights; :func:`latentface_sdk.model_folder.load_model_folder` does (checksum, safetensors
only), and what a model folder must hold is :func:`latentface_sdk.model_folder.check_model_folder`'s rule.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypedDict

from . import _paths
from .config import ModelConfig
from .errors import OfflineError, WeightsError
from .model_folder import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, check_model_folder

__all__ = ["DEFAULT_MODEL", "HUB_FILES", "PushOptions", "resolve", "hub_cache_dir", "is_offline",
           "model_card", "push_folder"]

#: The checkpoint used when no name is given.
DEFAULT_MODEL = "latentface-cpu-small"

#: The files fetched from a Hub repository (nothing else is downloaded).
HUB_FILES = [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]

# owner/name with the characters the Hub allows (one slash, no "..", no leading/trailing separators).
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

_TRUE = {"1", "true", "yes", "on", "y", "t"}


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a true value (read at each call, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hub_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The Hub cache folder that would be used: ``cache_dir``, ``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or the
    default."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def _bundled_hint() -> str:
    names = _paths.list_bundled()
    shown = ", ".join(repr(n) for n in names) if names else "none are installed"
    return f"bundled models: {shown} (in {_paths.bundled_weights_dir()})"


def _looks_like_path(text: str) -> bool:
    """Strings that can only mean a file-system path (never a Hub id)."""
    return text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1


def resolve(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """The local folder holding ``config.json`` and ``model.safetensors`` for ``name_or_path``.

    See the module docstring for the order of the look-up. ``revision`` (a branch, tag or commit hash)
    and ``cache_dir`` apply to Hub ids only. ``local_files_only=None`` follows ``HF_HUB_OFFLINE``.

    Raises:
        WeightsError: the name is neither bundled, nor a model folder, nor a Hub id; or a folder lacks
            one of the two files. The message lists the bundled names.
        OfflineError: a Hub id that is not in the cache while offline (``local_files_only`` or
            ``HF_HUB_OFFLINE``) or while the Hub cannot be reached; the message names the cache folder.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
        if DEFAULT_MODEL not in _paths.list_bundled():
            raise WeightsError(
                f"the default model {DEFAULT_MODEL!r} is not installed ({_bundled_hint()}); pass a model "
                f"folder or a Hub id to from_pretrained"
            )
    text = os.fspath(name_or_path)
    if not text.strip():
        raise WeightsError(f"empty model name; {_bundled_hint()}")
    if isinstance(name_or_path, str) and text in _paths.list_bundled():
        return check_model_folder(_paths.bundled_weights_dir() / text, f"bundled model {text!r}")
    shown = text if len(text) <= 200 else f"{text[:120]}...({len(text)} characters)"
    try:
        path = Path(text).expanduser()
        is_dir, exists = path.is_dir(), path.exists()
    except (OSError, RuntimeError, ValueError) as exc:
        # a name the file system refuses outright (too long, NUL byte, '~user' without that user)
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise WeightsError(f"{shown!r}: not a usable model name or folder ({why}); "
                           f"{_bundled_hint()}") from None
    if is_dir:
        return check_model_folder(path, "folder")
    if exists:
        raise WeightsError(
            f"{path}: is a file; pass the folder that holds {CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    if not isinstance(name_or_path, str) or _looks_like_path(text) or not _REPO_ID.match(text):
        raise WeightsError(
            f"{shown!r}: no such model: not a bundled name, not an existing folder, and not a Hugging Face "
            f"Hub id of the form 'owner/name'; {_bundled_hint()}"
        )
    return _from_hub(text, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)


def _from_hub(
    repo_id: str,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool | None,
) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HFValidationError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a dependency
        raise WeightsError(f"{repo_id!r}: loading from the Hub needs huggingface_hub ({exc})") from exc

    offline = is_offline() if local_files_only is None else bool(local_files_only) or is_offline()
    cache = hub_cache_dir(cache_dir)
    at = f" at revision {revision!r}" if revision else ""
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=os.fspath(cache),
            local_files_only=offline,
            allow_patterns=HUB_FILES,
        )
    except LocalEntryNotFoundError as exc:
        why = (
            "offline mode is on (local_files_only=True or HF_HUB_OFFLINE=1)"
            if offline
            else "the Hugging Face Hub could not be reached"
        )
        raise OfflineError(
            f"{repo_id!r}{at}: not in the Hub cache at {cache} and {why}; download it once with network "
            f"access (or copy that cache folder), or pass a local model folder"
        ) from exc
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise WeightsError(
            f"{repo_id!r}: no such model on the Hugging Face Hub (or it is private/gated); {_bundled_hint()}"
        ) from exc
    except RevisionNotFoundError as exc:
        raise WeightsError(f"{repo_id!r}: revision {revision!r} not found on the Hugging Face Hub") from exc
    except (EntryNotFoundError, HFValidationError, ValueError) as exc:
        raise WeightsError(f"{repo_id!r}{at}: cannot fetch from the Hugging Face Hub ({exc})") from exc
    except Exception as exc:  # network errors that escape huggingface_hub's own handling (proxy, TLS)
        raise OfflineError(
            f"{repo_id!r}{at}: the Hugging Face Hub could not be reached ({type(exc).__name__}: {exc}); "
            f"the cache searched is {cache}"
        ) from exc
    return check_model_folder(Path(os.fspath(folder)), f"Hub snapshot of {repo_id!r}{at}")


def model_card(config: ModelConfig, repo_id: str) -> str:
    """A minimal ``README.md`` for a pushed model: the Hub's YAML metadata, how to load it, its sizes.

    It claims no measured numbers (the bundled model's card does, from the commands in docs/results.md);
    pass your own card to :func:`push_folder` to publish yours.
    """
    ae = config.autoencoder
    return (
        "---\n"
        "license: mit\n"
        "library_name: latentface-sdk\n"
        "pipeline_tag: image-feature-extraction\n"
        "tags:\n  - face\n  - self-supervised\n  - 3d-face-reconstruction\n  - representation-learning\n"
        "  - diffusion\n  - pytorch\n"
        "---\n\n"
        f"# {config.name}\n\n"
        "A LatentFace model (3D latent autoencoder + representation diffusion) for "
        "[latentface-sdk](https://pypi.org/project/latentface-sdk/).\n\n"
        "```python\n"
        "from latentface_sdk import FaceEncoder\n\n"
        f'enc = FaceEncoder.from_pretrained("{repo_id}")\n'
        'r = enc.encode("photo.jpg")   # latents of the largest face\n'
        "```\n\n"
        f"Input: {ae.image_size}x{ae.image_size} face crops (MTCNN, margin {config.crop.margin}); latents: "
        f"texture {ae.latent_dim}, shape {ae.latent_dim}, pose {ae.pose_dim}, light {ae.light_dim}. Weights: "
        "`model.safetensors` (SHA-256 in `config.json`).\n"
    )


class PushOptions(TypedDict, total=False):
    """The keyword arguments of :func:`push_folder` that
    :meth:`FaceEncoder.push_to_hub <latentface_sdk.FaceEncoder.push_to_hub>` passes on as they are."""

    private: bool | None
    token: str | None
    revision: str | None
    commit_message: str | None
    create_pr: bool
    api: Any


def push_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    api: Any = None,
) -> Any:
    """Upload a model folder's ``config.json``, ``model.safetensors`` and ``README.md`` to ``repo_id``.

    Creates the repository when it does not exist (``private`` as given). ``api`` is the
    :class:`huggingface_hub.HfApi` to use (default: a new one with ``token``); ``revision``, ``create_pr``
    and ``commit_message`` go to ``HfApi.upload_folder``, whose answer is returned (a ``CommitInfo`` with
    ``commit_url``). These options are :class:`PushOptions`.

    Raises:
        WeightsError: the folder is not a model folder, or ``repo_id`` is not of the form ``owner/name``.
        OfflineError: ``HF_HUB_OFFLINE`` is set (nothing is sent).
    """
    path = check_model_folder(Path(os.fspath(folder)), "folder to push")
    if not _REPO_ID.match(repo_id):
        raise WeightsError(f"{repo_id!r}: a Hub repo id has the form 'owner/name'")
    if is_offline():
        raise OfflineError(f"cannot push {path} to {repo_id!r}: HF_HUB_OFFLINE is set")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=os.fspath(path),
        repo_type="model",
        revision=revision,
        create_pr=create_pr,
        allow_patterns=HUB_FILES,
        commit_message=commit_message or f"Upload {path.name} with latentface-sdk",
    )
