"""A checkpoint in parts: a model folder and its optimizer state as safetensors files under a size limit.

A machine that returns at most a few files of 16 MiB each cannot hand back a stage-1 checkpoint whole
(the model is ~39 MB in float32, Adam's state ~79 MB). :func:`split_checkpoint` (``latentface-train split``)
writes a checkpoint folder (``config.json`` + ``model.safetensors`` + optional ``trainer_state.pt``) as

* ``model-00001-of-0000M.safetensors`` ...: the weights, packed in order, a tensor cut where a file is full;
* ``trainer-00001-of-0000T.safetensors`` ...: the optimizer state, step and RNG state (optional);
* ``checkpoint.index.json``: the model config, where every tensor (or piece of one) lies, the
  trainer state's non-tensor values, and each file's size and SHA-256.

Every file stays under ``max_bytes`` (default :data:`DEFAULT_PART_BYTES`, 16 MiB). The index (without
the file digests) is also stored in the metadata of the first model file, so the parts load even when
the index file was left behind: the default stage-1 checkpoint is 3 model files + 5 trainer files.
The trainer files are optional: without them the weights load (``--init-from PARTS``) but the
optimizer starts afresh. :func:`join_checkpoint` (``latentface-train join``) writes the checkpoint folder
back, byte-identical tensors, for ``--resume``. Nothing here unpickles: the trainer state's
structure is JSON and its tensors are safetensors.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..atomic import atomic_path, save_torch
from ..config import ModelConfig
from ..digests import file_digest
from ..errors import ChecksumError, WeightsError
from ..model_folder import (
    CHECKPOINT_PARTS,
    CONFIG_NAME,
    WEIGHTS_NAME,
    load_model_folder,
    save_model_folder,
)

__all__ = ["DEFAULT_PART_BYTES", "INDEX_NAME", "CheckpointParts", "is_parts_folder", "join_checkpoint",
           "load_parts", "load_weights", "save_parts", "split_checkpoint"]

logger = logging.getLogger("latentface_sdk.train")

INDEX_NAME = "checkpoint.index.json"
TRAINER_STATE = "trainer_state.pt"
#: The largest file written (exclusive): 16 MiB.
DEFAULT_PART_BYTES = 16 * 2**20
GROUPS = ("model", "trainer")
_PART_RE = re.compile(r"^(model|trainer)-(\d{5})-of-(\d{5})\.safetensors$")
#: Bytes of safetensors header a tensor entry may take beyond its name (dtype, shape, offsets, quotes).
_ENTRY_BYTES = 128
#: Bytes of header every file may take besides its entries (length prefix, braces, padding, metadata key).
_FILE_BYTES = 512


@dataclass
class CheckpointParts:
    """What :func:`load_parts` reassembles: the model config and tensors, and the trainer state (or None)."""

    config: ModelConfig
    model: dict[str, Tensor]
    trainer: dict[str, Any] | None


def _part_name(group: str, i: int, n: int) -> str:
    return f"{group}-{i + 1:05d}-of-{n:05d}.safetensors"


# ----------------------------------------------------------------------- trainer state <-> JSON + tensors


def _encode(obj: Any, path: str, tensors: dict[str, Tensor]) -> Any:
    """``obj`` (tensors, dicts, lists, tuples, numbers, strings) as JSON, its tensors moved to ``tensors``."""
    if isinstance(obj, Tensor):
        name = path or "value"
        if name in tensors:
            raise ValueError(f"trainer state: two tensors at {name!r}")
        tensors[name] = obj
        return {"__tensor__": name}
    if isinstance(obj, Mapping):
        items = []
        for k, v in obj.items():
            if not isinstance(k, str | int | float | bool) and k is not None:
                raise ValueError(f"trainer state: key {k!r} at {path!r} is not a plain value")
            items.append([k, _encode(v, f"{path}.{k}" if path else str(k), tensors)])
        return {"__dict__": items}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    raise ValueError(f"trainer state: {type(obj).__name__} at {path!r} is neither a tensor nor plain data")


def _decode(obj: Any, tensors: Mapping[str, Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        return {k: _decode(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


# ----------------------------------------------------------------------------------------- packing


def _pack(group: str, tensors: Mapping[str, Tensor], max_bytes: int, reserve: int = 0
          ) -> tuple[list[dict[str, Tensor]], dict[str, Any]]:
    """Cut ``tensors`` into files of under ``max_bytes``: the files' tensors and the index entries.

    Tensors go in order; one that does not fit the room left is cut (flattened) there and continues in the
    next file, so the files are as few as the bytes allow. ``reserve``: header bytes kept free in the
    first file (the embedded index).
    """
    files: list[dict[str, Tensor]] = [{}]
    room = max_bytes - 1 - _FILE_BYTES - reserve
    entries: dict[str, Any] = {}
    for name, tensor in tensors.items():
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        size, total, start, piece = flat.element_size(), flat.numel(), 0, 0
        entry: dict[str, Any] = {"dtype": str(tensor.dtype).removeprefix("torch."),
                                 "shape": list(tensor.shape), "parts": []}
        while True:
            key = name if start == 0 and piece == 0 else f"{name}@{piece}"
            fit = max((room - len(key.encode()) - 8 - _ENTRY_BYTES) // size, 0)
            left = total - start
            if left <= fit:
                take = left
            elif fit > 0:
                take = fit
                key = f"{name}@{piece}"
            elif files[-1]:
                files.append({})
                room = max_bytes - 1 - _FILE_BYTES
                continue
            else:
                raise ValueError(f"max_bytes {max_bytes} is too small for one element of {name!r}")
            whole = take == total
            files[-1][key] = (tensor.detach().to("cpu").contiguous() if whole
                              else flat[start:start + take].clone())
            entry["parts"].append([len(files) - 1, key, take])
            room -= take * size + len(key.encode()) + _ENTRY_BYTES
            start += take
            piece += 1
            if start >= total:
                break
        entries[name] = entry
    n = len(files)
    for entry in entries.values():
        entry["parts"] = [[_part_name(group, i, n), key, count] for i, key, count in entry["parts"]]
    return files, entries


def save_parts(out: str | Path, config: ModelConfig, model: Mapping[str, Tensor],
               trainer: Mapping[str, Any] | None = None, *, max_bytes: int = DEFAULT_PART_BYTES) -> Path:
    """Write a model's tensors (and a trainer state) as parts under ``max_bytes`` each; returns the
    index path.

    Part files of an earlier split in ``out`` that the new one does not use are removed.
    """
    from safetensors.torch import save_file

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    trainer_tensors: dict[str, Tensor] = {}
    skeleton = None if trainer is None else _encode(dict(trainer), "", trainer_tensors)
    cfg = config.to_dict()
    cfg.pop("checksum", None)
    base: dict[str, Any] = CHECKPOINT_PARTS.stamp({"config": cfg, "trainer": skeleton})
    reserve = 2 * len(json.dumps(base)) + sum(2 * len(k) + 200 for k in model) + 4096
    while True:
        model_files, model_entries = _pack("model", model, max_bytes, reserve)
        index = {**base, "tensors": {"model": model_entries}}
        if trainer is not None:
            trainer_files, trainer_entries = _pack("trainer", trainer_tensors, max_bytes)
            index["tensors"]["trainer"] = trainer_entries
        else:
            trainer_files = []
        embedded = CHECKPOINT_PARTS.dumps(index, indent=None)
        if len(json.dumps(embedded)) + 64 <= reserve:
            break
        reserve = 2 * len(json.dumps(embedded)) + 4096
        if reserve > max_bytes // 2:
            raise ValueError(f"max_bytes {max_bytes} is too small: the index alone takes "
                             f"{len(embedded)} bytes")
    files: dict[str, dict[str, Any]] = {}
    for group, parts in (("model", model_files), ("trainer", trainer_files)):
        for i, tensors in enumerate(parts):
            name = _part_name(group, i, len(parts))
            meta = {"format": CHECKPOINT_PARTS.name}
            if group == "model" and i == 0:
                meta["index"] = embedded
            with atomic_path(folder / name) as tmp:
                save_file(tensors, str(tmp), metadata=meta)
                nbytes = tmp.stat().st_size
                if nbytes >= max_bytes:  # the header estimate above is generous; this is a guard
                    raise RuntimeError(f"{name}: {nbytes} bytes, not under {max_bytes}")
                files[name] = {"bytes": nbytes, "sha256": file_digest(tmp)}
    index["files"] = files
    index_path = CHECKPOINT_PARTS.write(folder / INDEX_NAME, index)
    for stale in folder.iterdir():
        if _PART_RE.match(stale.name) and stale.name not in files:
            stale.unlink()
    return index_path


def split_checkpoint(checkpoint: str | Path, out: str | Path, *, optimizer: bool = True,
                     max_bytes: int = DEFAULT_PART_BYTES) -> Path:
    """Split a checkpoint or model folder (``config.json``, ``model.safetensors`` and, with ``optimizer``
    and when present, ``trainer_state.pt``) into parts in ``out``; returns the index path."""
    src = Path(checkpoint)
    config, tensors = load_model_folder(src)
    trainer = None
    state_file = src / TRAINER_STATE
    if optimizer and state_file.is_file():
        trainer = torch.load(state_file, map_location="cpu", weights_only=True)
    elif optimizer:
        logger.info("%s: no %s; splitting the weights only", src, TRAINER_STATE)
    return save_parts(out, config, tensors, trainer, max_bytes=max_bytes)


# ----------------------------------------------------------------------------------------- loading


def is_parts_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds a checkpoint in parts (an index, or a first model part)."""
    root = Path(folder)
    return root.is_dir() and ((root / INDEX_NAME).is_file() or any(root.glob("model-00001-of-*.safetensors")))


def _read_index(root: Path) -> tuple[dict[str, Any], bool]:
    """The index, checked (:data:`~latentface_sdk.model_folder.CHECKPOINT_PARTS`), and whether it came
    from the index file (with the file digests)."""
    path = root / INDEX_NAME
    if path.is_file():
        return CHECKPOINT_PARTS.read(path), True
    firsts = sorted(root.glob("model-00001-of-*.safetensors"))
    if not firsts:
        raise WeightsError(f"{root}: no {INDEX_NAME} and no model-00001-of-*.safetensors")
    from safetensors import safe_open

    try:
        with safe_open(str(firsts[0]), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # safetensors raises several types for damaged files
        raise WeightsError(f"{firsts[0]}: not a readable safetensors file ({exc})") from exc
    if "index" not in meta:
        raise WeightsError(f"{firsts[0]}: no embedded index")
    logger.warning("%s: no %s; using the index stored in %s (file digests not checked)", root, INDEX_NAME,
                   firsts[0].name)
    return CHECKPOINT_PARTS.loads(meta["index"], f"{firsts[0]} (embedded index)"), False


def _assemble(root: Path, entries: Mapping[str, Any]) -> dict[str, Tensor]:
    from safetensors import safe_open

    handles: dict[str, Any] = {}
    out: dict[str, Tensor] = {}
    try:
        for name, entry in entries.items():
            pieces = []
            for file, key, count in entry["parts"]:
                if file not in handles:
                    handles[file] = safe_open(str(root / file), framework="pt").__enter__()
                piece = handles[file].get_tensor(key)
                if piece.numel() != count:
                    raise WeightsError(f"{root / file}: {key!r} holds {piece.numel()} values, "
                                       f"the index says {count}")
                pieces.append(piece.reshape(-1))
            dtype = getattr(torch, entry["dtype"])
            flat = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
            if flat.dtype != dtype or flat.numel() != math.prod(entry["shape"]):
                raise WeightsError(f"{root}: tensor {name!r} does not match its index entry")
            out[name] = flat.reshape(entry["shape"])
    except WeightsError:
        raise
    except Exception as exc:  # safetensors raises several types for damaged or missing files
        raise WeightsError(f"{root}: cannot reassemble the checkpoint parts ({exc})") from exc
    finally:
        for h in handles.values():
            h.__exit__(None, None, None)
    return out


def load_parts(folder: str | Path, *, trainer: bool = True) -> CheckpointParts:
    """Reassemble a checkpoint in parts (:func:`save_parts`).

    With the index file every part's SHA-256 is checked (:class:`ChecksumError` names the file). The
    trainer state is None when it was not split, when ``trainer=False``, or when its files are missing
    (logged: the weights alone still load).
    """
    root = Path(folder)
    index, checked = _read_index(root)
    tensors = index["tensors"]
    want = ["model"] + (["trainer"] if trainer and "trainer" in tensors else [])
    for group in list(want):
        names = {f for e in tensors[group].values() for f, _, _ in e["parts"]}
        missing = sorted(n for n in names if not (root / n).is_file())
        if missing and group == "trainer":
            logger.warning("%s: trainer parts missing (%s); loading the weights only", root, missing)
            want.remove("trainer")
            continue
        if missing:
            raise WeightsError(f"{root}: model parts missing: {missing}")
        if checked:
            for n in sorted(names):
                expected = index["files"][n]["sha256"]
                if file_digest(root / n) != expected:
                    raise ChecksumError(f"{root / n}: SHA-256 does not match {INDEX_NAME}; "
                                        "the part is damaged")
    config = ModelConfig.from_dict(index["config"], source=f"{root}/{INDEX_NAME}")
    model = _assemble(root, tensors["model"])
    state = None
    if "trainer" in want:
        state = _decode(index["trainer"], _assemble(root, tensors["trainer"]))
    return CheckpointParts(config=config, model=model, trainer=state)


def join_checkpoint(parts: str | Path, out: str | Path) -> Path:
    """Write a checkpoint in parts back as a checkpoint folder (``config.json``, ``model.safetensors``,
    and ``trainer_state.pt`` when the trainer parts are there): what ``--resume`` reads in RUN/checkpoint
    and ``--init-from`` reads as a model folder. Returns ``out``."""
    loaded = load_parts(parts)
    folder = save_model_folder(out, loaded.config, loaded.model)
    if loaded.trainer is not None:
        save_torch(loaded.trainer, folder / TRAINER_STATE)
    return folder


def load_weights(folder: str | Path) -> tuple[ModelConfig, dict[str, Tensor]]:
    """A model's config and tensors from a model folder or a checkpoint in parts (``--init-from``)."""
    root = Path(folder)
    if (root / WEIGHTS_NAME).is_file() or (root / CONFIG_NAME).is_file() or not is_parts_folder(root):
        return load_model_folder(root)
    loaded = load_parts(root, trainer=False)
    return loaded.config, loaded.model
