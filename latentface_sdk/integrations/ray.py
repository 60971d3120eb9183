"""Feature extraction on Ray Data: the model loaded once per worker, batches of image files in, rows out.

For photo archives that outgrow one machine. Ray Data runs the same pipeline on a laptop and on a
cluster; this module only supplies the callable class that ``map_batches`` needs::

    import ray
    from latentface_sdk.integrations.ray import FaceEncodeBatches

    files = ray.data.read_binary_files("s3://my-bucket/photos/", include_paths=True)
    rows = files.map_batches(FaceEncodeBatches, fn_constructor_kwargs={"operation": "encode"},
                             compute=ray.data.ActorPoolStrategy(size=8), num_cpus=1, batch_size=64)
    rows.write_parquet("s3://my-bucket/latentface/")

or from a shell, over the same inputs as the one-machine command::

    latentface encode photos/ -o features/ --engine ray --workers 8 [--address auto]

Rows: one per face, as in the ``.npz`` of ``latentface encode``/``disentangle`` and with the same
columns and the same names: ``texture``, ``shape``, ``pose``, ``light``, ``boxes``, ``scores``, ``ok``,
``errors``, ``names`` and ``source`` (``disentangle`` adds ``identity_*`` and ``expression_*``), vectors as
fixed-size float32 lists that pandas, Polars, DuckDB and Spark read as they are. The ``.npz``'s per-file
arrays become columns of every row: ``model`` is the model id (``NAME@SHA256`` of the weights, as the
``.npz``'s scalar ``model``) and ``inputs`` the path of the row's own input, so that ``inputs`` is
``names`` and the ``.npz``'s ``inputs`` array is ``inputs`` taken once per ``source``, in ``source`` order.
The ``.npz``'s ``run_key`` (what a resumed run checks) has no column: a Ray run is not resumed, Ray
retries its tasks instead. Rows come in no particular order; sort on ``source`` for the ``.npz``'s.

``source`` and the names need the run's input list, which :func:`encode_files` (``--engine ray``) passes
on: ``source`` is the index of the row's input in that list (the inputs in command-line order, each
folder's files sorted, as :func:`latentface_sdk.cli.collect_inputs` lists them) and the names are the paths
as that list gives them (relative where the command line was), in ``names``, ``inputs`` and the leading
name of ``errors``. Without the list (:class:`FaceEncodeBatches` over a read of your own), a distributed
read has no global input order: ``source`` is -1 and the names are the paths Ray read; join on ``names``.
An input that cannot be decoded, or holds no face, is one row with ``ok`` false and the reason in
``errors`` (NaN vectors): nothing is dropped and no bad file stops the job.

Needs ``pip install 'latentface-sdk[ray]'`` (Ray Data and PyArrow); nothing here is imported by
``import latentface_sdk``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._extras import install_hint

if TYPE_CHECKING:
    import pyarrow

    from ..config import ModelConfig
    from ..encoder import FaceEncoder

__all__ = ["FaceEncodeBatches", "encode_batch", "encode_files", "model_id_of", "require_ray"]

Operation = Literal["encode", "disentangle", "answers"]

#: Float columns of every row, then those ``disentangle`` adds.
VECTOR_COLUMNS = ("texture", "shape", "pose", "light", "boxes", "scores")
DISENTANGLE_COLUMNS = ("identity_texture", "identity_shape", "expression_texture", "expression_shape")
#: What ``operation="answers"`` (``latentface encode --answers``) adds to the encode columns (besides the
#: string column ``expression``, the top label).
ANSWER_COLUMNS = ("identity_embedding", "expression_probabilities")


def require_ray() -> Any:
    """The ``ray`` module, or an :class:`ImportError` that says which extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is what is used
    except ImportError as exc:
        raise ImportError(
            f"the Ray integration needs Ray Data and PyArrow: {install_hint('ray')}"
        ) from exc
    return ray


def _renamed(error: str, old: str, new: str) -> str:
    """``error`` with its leading input name ``old`` replaced by ``new``."""
    return new + error[len(old):] if error.startswith(old) else error


def model_id_of(config: ModelConfig, folder: str | os.PathLike[str] | None = None) -> str:
    """``NAME@SHA256``: the model's name and its weights' digest, as ``latentface encode`` records it in
    ``model`` (:func:`latentface_sdk.model_folder.model_id`)."""
    from ..model_folder import model_id

    return model_id(config, folder)


def _input_key(path: str, root: str | None = None) -> str:
    """The form in which an input path (relative to ``root``, default: the current folder) and the path
    Ray read of it are compared."""
    return os.path.normpath(os.path.join(root or os.getcwd(), path))


def encode_batch(encoder: FaceEncoder, images: Sequence[Any], paths: Sequence[str], *,
                 operation: Operation = "encode", detect: bool = True,
                 faces: Literal["largest", "all"] = "largest", batch_size: int = 64, steps: int | None = None,
                 seed: int | None = 0, num_samples: int = 1, init: Literal["noise", "zero"] | None = None,
                 sources: Sequence[int] | None = None, model_id: str | None = None) -> pyarrow.Table:
    """Rows of one batch: every input (file bytes, a path, an array, ...) named by its entry in ``paths``.

    The rows are those of ``encoder.encode`` (or ``disentangle``) on the batch, with ``names``, ``inputs``
    and the ``errors`` naming the path instead of ``item k``; ``sources`` gives each input's index in the
    run's input list (the ``source`` column; -1 for every row without it) and ``model_id`` the ``model``
    column (default: :func:`model_id_of` of the encoder's config). See the module docstring for the columns.
    """
    import pyarrow as pa

    if len(images) != len(paths):
        raise ValueError(f"{len(images)} images but {len(paths)} paths")
    if sources is not None and len(sources) != len(paths):
        raise ValueError(f"{len(sources)} sources but {len(paths)} paths")
    if not images:
        raise ValueError("an empty batch")
    floats: tuple[str, ...]
    if operation == "encode":
        arrays = encoder.encode(list(images), detect=detect, faces=faces, batch_size=batch_size).numpy()
        floats = VECTOR_COLUMNS
    elif operation == "disentangle":
        arrays = encoder.disentangle(list(images), detect=detect, faces=faces, batch_size=batch_size,
                                     steps=steps, seed=seed, num_samples=num_samples, init=init).numpy()
        floats = VECTOR_COLUMNS + DISENTANGLE_COLUMNS
    elif operation == "answers":
        x = encoder.expressions(list(images), detect=detect, faces=faces, batch_size=batch_size)
        arrays = x.numpy()
        arrays["identity_embedding"] = encoder.identity_from_latents(x.encoding).numpy()
        floats = VECTOR_COLUMNS + ANSWER_COLUMNS
    else:
        raise ValueError(f"operation must be 'encode', 'disentangle' or 'answers' (got {operation!r})")
    source = arrays["source"]
    names = [str(paths[int(i)]) for i in source]
    errors = [_renamed(str(e), f"item {int(i)}", str(paths[int(i)])) for e, i in zip(arrays["errors"], source,
                                                                                        strict=True)]
    rows_source = [-1 if sources is None else int(sources[int(i)]) for i in source]
    model = model_id_of(encoder.config) if model_id is None else model_id
    columns: dict[str, Any] = {}
    for key in floats:
        a = np.ascontiguousarray(arrays[key], dtype=np.float32)
        columns[key] = (pa.array(a) if a.ndim == 1
                        else pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), a.shape[1]))
    if "expression" in arrays:
        columns["expression"] = pa.array([str(v) for v in arrays["expression"]], pa.string())
    columns["ok"] = pa.array(arrays["ok"].astype(bool))
    columns["errors"] = pa.array(errors, pa.string())
    columns["names"] = pa.array(names, pa.string())
    columns["source"] = pa.array(rows_source, pa.int64())
    columns["inputs"] = pa.array(names, pa.string())
    columns["model"] = pa.array([model] * len(names), pa.string())
    return pa.table(columns)


class FaceEncodeBatches:
    """Callable class for ``ray.data.Dataset.map_batches``: one :class:`FaceEncoder` per worker.

    Batches need a ``path`` column and either ``bytes`` (``read_binary_files(..., include_paths=True)``,
    the way that keeps undecodable files as rows) or ``image`` arrays (``read_images(...,
    include_paths=True)``). Returns a PyArrow table of rows (:func:`encode_batch`).
    With ``inputs`` (the run's input paths, in order; relative ones to ``root``), each file Ray read is
    matched to its entries in that list by absolute path: its rows carry the entry's index as ``source``
    and the entry as its name (a file listed twice gives the rows of each entry, as ``latentface encode``
    does; a file that matches no entry keeps ``source`` -1 and the path Ray read).

    Args:
        model: a model folder, a Hub id or ``None`` for the bundled weights, resolved on each worker
            (so a folder must exist on every node; the bundled weights always do).
        operation: ``"encode"``, ``"disentangle"`` or ``"answers"`` (encode's columns, the identity
            embedding, expression probabilities and label: ``latentface encode --answers``).
        device: ``"auto"`` takes the worker's GPU when Ray gave it one (``num_gpus=1``).
        threads: torch threads per worker (1: give each worker one CPU, ``num_cpus=1``).
        detect, faces, batch_size, steps, seed, num_samples, init: as in :meth:`FaceEncoder.encode`
            and :meth:`FaceEncoder.disentangle`.
        inputs: the run's input paths as the rows should name them (see above); ``None``: no ``source``.
        root: the folder that relative ``inputs`` are relative to (Ray runs workers in folders of its
            own, so pass the driver's current folder; default: the worker's).
        model_id: the ``model`` column; default :func:`model_id_of` of the loaded model.
    """

    def __init__(self, model: str | None = None, *, operation: Operation = "encode", device: str = "auto",
                 threads: int = 1, detect: bool = True, faces: Literal["largest", "all"] = "largest",
                 batch_size: int = 64, revision: str | None = None, local_files_only: bool | None = None,
                 steps: int | None = None, seed: int | None = 0, num_samples: int = 1,
                 init: Literal["noise", "zero"] | None = None, inputs: Sequence[str] | None = None,
                 root: str | None = None, model_id: str | None = None) -> None:
        from .. import hub
        from ..encoder import FaceEncoder

        folder = hub.resolve(model, revision=revision, local_files_only=local_files_only)
        self.encoder = FaceEncoder.from_pretrained(folder, device=device, threads=threads)
        model_name = model_id_of(self.encoder.config, folder) if model_id is None else model_id
        self.options: dict[str, Any] = {"operation": operation, "detect": detect, "faces": faces,
                                        "batch_size": batch_size, "steps": steps, "seed": seed,
                                        "num_samples": num_samples, "init": init, "model_id": model_name}
        self.inputs = None if inputs is None else [str(p) for p in inputs]
        self.entries: dict[str, list[int]] = {}
        for i, name in enumerate(self.inputs or []):
            self.entries.setdefault(_input_key(name, root), []).append(i)

    def __call__(self, batch: dict[str, Any]) -> pyarrow.Table:
        if "path" not in batch:
            raise KeyError("the batch has no 'path' column: read with include_paths=True")
        if "bytes" in batch:
            images: list[Any] = [bytes(b) for b in batch["bytes"]]
        elif "image" in batch:
            images = [np.asarray(a) for a in batch["image"]]
        else:
            raise KeyError("the batch needs a 'bytes' column (ray.data.read_binary_files) or an 'image' "
                           f"column (ray.data.read_images); it has {sorted(batch)}")
        paths = [str(p) for p in batch["path"]]
        if self.inputs is None:
            return encode_batch(self.encoder, images, paths, **self.options)
        named: list[Any] = []
        names: list[str] = []
        sources: list[int] = []
        for image, path in zip(images, paths, strict=True):
            for i in self.entries.get(_input_key(path), [-1]):
                named.append(image)
                names.append(path if i < 0 else self.inputs[i])
                sources.append(i)
        return encode_batch(self.encoder, named, names, sources=sources, **self.options)


def encode_files(files: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
                 operation: Operation = "encode", model: str | None = None, workers: int | None = None,
                 address: str | None = None, batch_size: int = 64, threads: int = 1, device: str = "cpu",
                 progress: bool = True, model_id: str | None = None, **options: Any) -> str:
    """Encode image files on Ray and write the rows as Parquet files in the folder ``output``.

    ``address`` joins a running Ray cluster (``"auto"``, ``"ray://head:10001"``); without it, and when
    Ray is not yet started in this process, a local Ray starts with ``workers`` x ``threads`` CPUs plus
    one for reading files and writing Parquet (default ``workers``: all cores). On a cluster ``workers``
    defaults to its CPUs / ``threads`` less one: model copies that hold every CPU would leave none to the
    read and write tasks, and the job would wait forever. Each copy runs ``threads`` torch threads.
    Other ``options`` (``detect``, ``faces``, ``steps``, ``seed``, ...) go to
    :class:`FaceEncodeBatches`. Returns the output folder.

    The rows name each input as ``files`` gives it (relative paths stay relative) and carry its index
    in ``files`` as ``source``; ``model_id`` sets the ``model`` column (default: :func:`model_id_of` of the
    model each worker loads, which is what the one-machine command records). Each file is read once,
    however many entries of ``files`` name it.
    """
    ray = require_ray()
    if not ray.is_initialized():
        if address is not None:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            workers = workers or os.cpu_count() or 1
            ray.init(num_cpus=workers * threads + 1, include_dashboard=False, logging_level=logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = progress
    if not progress:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // max(1, threads) - 1)
    names = [os.fspath(f) for f in files]
    paths = list(dict.fromkeys(_input_key(n) for n in names))
    dataset = ray.data.read_binary_files(paths, include_paths=True)
    rows = dataset.map_batches(
        FaceEncodeBatches,
        fn_constructor_kwargs={"model": model, "operation": operation, "device": device, "threads": threads,
                               "batch_size": batch_size, "inputs": names, "root": os.getcwd(),
                               "model_id": model_id, **options},
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads, batch_size=batch_size,
        batch_format="numpy",
    )
    out = os.fspath(output)
    rows.write_parquet(out)
    return out
