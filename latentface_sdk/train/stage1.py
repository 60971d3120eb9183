"""Stage-1 trainer: the 3D latent autoencoder learns from unlabelled face crops by re-rendering them.

``python -m latentface_sdk.train stage1 --config CONFIG.json --out RUN_DIR`` (or ``latentface-train
stage1 ...``). The run folder receives:

* ``train.log``: one JSON object per logged step (losses, images/s), appended across resumes;
* ``grids/step_XXXXXXX.png``: input | reconstruction | albedo | depth | shading | frontal, for a fixed
  set of faces, every ``grid_every`` steps;
* ``checkpoint/``: ``config.json`` + ``model.safetensors`` (a loadable model folder) and
  ``trainer_state.pt`` (optimizer state, step and RNG state: tensors and numbers only, read back with
  ``torch.load(weights_only=True)``); ``--resume`` continues from it with the same data order;
* ``model/``: the final model folder (stage 2 adds its RDMs to it).

``--bundle FILE`` (recipe field ``bundle``) trains on a training bundle packed by ``latentface-train bundle``
(:mod:`latentface_sdk.train.bundle`) instead of reading the photos; ``--init-from`` takes a model folder
or a checkpoint in parts (:mod:`latentface_sdk.train.parts`). The recipe's ``amp`` ("bf16") and
``channels_last`` options are in :mod:`latentface_sdk.train.precision`; docs/gpu.md has the GPU workflow.

Multi-process training: ``torchrun --nproc_per_node N -m latentface_sdk.train stage1 ...`` (gloo on
CPU, nccl on CUDA); rank 0 writes every file.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from ..config import ModelConfig
from ..digests import json_digest
from ..errors import ConfigError, DataError
from ..landmarks import canonical_keypoints, mirror_landmarks, pearson, roll_estimate, yaw_estimate
from ..model_folder import AUTOENCODER, load_model_folder, load_part, prefixed, save_model_folder
from ..models.autoencoder import LatentAutoencoder
from ..render.renderer import FaceRenderer
from ._cli import add_data_options, command_parser, stage1_recipe
from .augment import augment_plan
from .bundle import Stage1Bundle, data_recipe, load_bundle
from .data import CropDataset, stage1_crops
from .losses import Reconstruction, Stage1Forward, Stage1Loss, depth_at, light_cycle_loss, reconstruct
from .parts import load_weights
from .perceptual import build_feature_network
from .precision import (
    AutocastFeatures,
    Float32Renderer,
    amp_context,
    as_float32,
    check_amp,
    to_channels_last,
)
from .recipes import Stage1Config
from .runtime import (
    append_log,
    init_distributed,
    load_trainer_state,
    mean_over_ranks,
    rank_device,
    rank_weights,
    save_trainer_state,
)

logger = logging.getLogger("latentface_sdk.train")


# ----------------------------------------------------------------------------------------- helpers


def epoch_order(n: int, epoch: int, seed: int) -> Tensor:
    """The permutation of data set indices used in ``epoch`` (identical on every rank and every resume)."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=gen)


def batch_indices(n: int, step: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> Tensor:
    """Data indices of global ``step`` for one rank (each rank takes ``batch_size`` distinct images)."""
    per_step = batch_size * world
    per_epoch = max(n // per_step, 1)
    epoch, pos = divmod(step, per_epoch)
    order = epoch_order(n, epoch, seed)
    start = pos * per_step + rank * batch_size
    return order[start:start + batch_size]


def flips_for(step: int, count: int, seed: int, rank: int = 0, world: int = 1) -> Tensor:
    """Which samples of a step are mirrored (augmentation), reproducible from the step number.

    Drawn for the global batch (``count`` on each of ``world`` ranks), each rank taking its slice: the
    same draws as one process with the global batch.
    """
    gen = torch.Generator().manual_seed(seed * 7_919 + step * 31)
    return (torch.rand(count * world, generator=gen) < 0.5)[rank * count:(rank + 1) * count]


def load_batch(data: CropDataset, idx: Tensor, flips: Tensor) -> Tensor:
    """Images (B, 3, H, W) in [0, 1] of ``idx``, mirrored where ``flips``."""
    crops = torch.from_numpy(np.ascontiguousarray(data.crops[idx.numpy()]))
    x = crops.permute(0, 3, 1, 2).float() / 255.0
    return torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)


def load_landmarks(data: CropDataset, idx: Tensor, flips: Tensor) -> Tensor | None:
    """Landmarks (B, 5, 2) of ``idx`` matching :func:`load_batch` (mirrored where ``flips``), or None."""
    if data.landmarks is None:
        return None
    pts = torch.from_numpy(np.ascontiguousarray(data.landmarks[idx.numpy()])).float()
    return torch.where(flips.view(-1, 1, 1), mirror_landmarks(pts), pts)


def _to_uint8(x: Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def reconstruction_grid(images: Tensor, rec: Reconstruction, renderer: FaceRenderer) -> Image.Image:
    """A PNG-ready grid, one face per row: input | reconstruction | albedo | depth | shading | frontal."""
    depth = rec.maps.depth
    lo = depth.amin(dim=(1, 2), keepdim=True)
    hi = depth.amax(dim=(1, 2), keepdim=True)
    depth_vis = (1.0 - (depth - lo) / (hi - lo).clamp(min=1e-6)).unsqueeze(1).expand(-1, 3, -1, -1)
    frontal = renderer.render_face(rec.shaded.image, depth, torch.zeros_like(rec.latents.pose)).image
    cols = [images, rec.recon.image, rec.maps.albedo, depth_vis, rec.shaded.shading.expand(-1, 3, -1, -1),
            frontal]
    rows = [np.concatenate([_to_uint8(c[i]) for c in cols], axis=1) for i in range(images.shape[0])]
    return Image.fromarray(np.concatenate(rows, axis=0))


@dataclass
class TrainState:
    step: int = 0
    elapsed: float = 0.0


def save_checkpoint(folder: Path, model: LatentAutoencoder, cfg: ModelConfig, opt: torch.optim.Optimizer,
                    state: TrainState) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_model_folder(folder, cfg, prefixed(model, AUTOENCODER))
    save_trainer_state(folder / "trainer_state.pt", opt, state.step, elapsed=state.elapsed)


def load_checkpoint(folder: Path, model: LatentAutoencoder, opt: torch.optim.Optimizer) -> TrainState:
    _, tensors = load_model_folder(folder)
    load_part(model, tensors, AUTOENCODER, str(folder))
    payload = load_trainer_state(folder / "trainer_state.pt", opt)
    return TrainState(step=int(payload["step"]), elapsed=float(payload["elapsed"]))


# ----------------------------------------------------------------------------------------- trainer


def renderer_backend(name: str, device: torch.device) -> Literal["fast", "pytorch3d"]:
    """The rasteriser of a recipe's ``renderer`` (``"auto"``, ``"fast"``, ``"pytorch3d"``) on ``device``.

    ``"auto"`` is the vectorised ``fast`` rasteriser on every device, chosen by measured speed: on the CPU
    it makes a step many times faster (benchmarks/train_speed.py), and on an H200 (2026-12, commit
    9a84a52, default recipe, batch 256) it trained at 2,938 images/s against 1,236 with PyTorch3D's.
    PyTorch3D's rasteriser stays the renderer of record: tests/test_renderer.py checks that the two agree.
    ``"pytorch3d"`` needs the extra ``[pytorch3d]``: without it this raises an :class:`ImportError` naming it.
    """
    if name in ("auto", "fast"):
        return "fast"
    if name == "pytorch3d":
        from ..render.rasterize import require_pytorch3d

        require_pytorch3d("stage1.renderer 'pytorch3d'")
        return "pytorch3d"
    raise ConfigError(f"stage1.renderer must be 'auto', 'fast' or 'pytorch3d' (got {name!r})")


class Stage1Trainer:
    """Holds the model, renderer, loss and optimizer of one stage-1 run (I/O lives in :func:`train`).

    ``keypoints`` (5, 2): canonical keypoint positions for the landmark loss (needed when
    ``cfg.lambda_landmark > 0``; :func:`latentface_sdk.landmarks.canonical_keypoints` of the data).
    ``feature_state``: the ``mtcnn`` feature network's weights (from a training bundle) instead of
    facenet-pytorch's file. ``cfg.amp``/``cfg.channels_last``: :mod:`latentface_sdk.train.precision`.
    """

    def __init__(self, cfg: Stage1Config, device: torch.device, keypoints: np.ndarray | None = None,
                 feature_state: dict[str, Tensor] | None = None) -> None:
        self.cfg = cfg
        self.device = device
        self.amp = check_amp(cfg.amp)
        torch.manual_seed(cfg.seed)
        self.model = LatentAutoencoder(cfg.model).to(device)
        ae = self.model.cfg
        backend = renderer_backend(cfg.renderer, device)
        renderer_type = FaceRenderer if self.amp == "off" else Float32Renderer
        self.renderer = renderer_type(ae.image_size, ae.fov_deg, (ae.depth_min + ae.depth_max) / 2, backend)
        features = build_feature_network(cfg.feature_net, cfg.vgg16_weights, state=feature_state).to(device)
        if cfg.channels_last:
            to_channels_last(self.model)
            to_channels_last(features)
        self.features: nn.Module = features if self.amp == "off" else AutocastFeatures(features, device.type)
        if cfg.lambda_landmark > 0 and keypoints is None:
            raise ConfigError("stage1.lambda_landmark > 0 needs landmarks in the training data")
        self.keypoints = None if keypoints is None else torch.as_tensor(keypoints, dtype=torch.float32)
        self.loss = Stage1Loss(lambda_f=cfg.lambda_f, lambda_flip=cfg.lambda_flip,
                               lambda_smooth=cfg.lambda_smooth,
                               pixel_depth=2 * math.tan(math.radians(ae.fov_deg / 2)) / ae.image_size,
                               lambda_landmark=cfg.lambda_landmark,
                               keypoints=None if self.keypoints is None else self.keypoints.to(device),
                               focal=self.renderer.focal, centre_depth=self.renderer.centre_depth,
                               region_weight=cfg.region_weight, keypoint_blur=cfg.keypoint_blur,
                               photo_confidence=cfg.photo_confidence,
                               feature_region_weight=cfg.feature_region_weight)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        cycle = cfg.light_cycle_count if cfg.lambda_light_cycle > 0 else 0
        self.forward: nn.Module = Stage1Forward(self.model, self.renderer, cycle)
        if dist.is_available() and dist.is_initialized():
            self.forward = nn.parallel.DistributedDataParallel(
                self.forward, device_ids=[device.index] if device.type == "cuda" else None
            )

    def step(self, images: Tensor, landmarks: Tensor | None = None) -> dict[str, float]:
        """One optimisation step on a batch (B, 3, 64, 64) in [0, 1]; returns the loss parts.

        ``landmarks`` (B, 5, 2) feed the landmark loss. The parts include ``relief`` (:func:`depth_relief`);
        the batch's poses are kept in ``last_pose`` for the trainer's :class:`PoseMonitor`.
        """
        self.model.train()
        images = images.to(self.device, non_blocking=True)
        if self.cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        lms = None if landmarks is None else landmarks.to(self.device)
        with amp_context(self.device, self.amp):
            rec, relit = self.forward(images)
        if self.amp != "off":  # the loss in float32 (the feature network keeps its own autocast)
            rec, relit = as_float32(rec), as_float32(relit)
        total, parts = self.loss(rec, images, self.features, lms)
        if relit is not None:
            cycle, cparts = light_cycle_loss(rec, relit)
            total = total + self.cfg.lambda_light_cycle * cycle
            parts.update(cparts)
            parts["loss"] = float(total.detach())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        parts["relief"] = depth_relief(rec.maps.depth.detach())
        if self.keypoints is not None:
            parts["nose_relief"] = nose_relief(rec.maps.depth.detach(), self.keypoints.to(self.device))
        self.last_pose = rec.latents.pose.detach().float().cpu()
        return parts

    @torch.no_grad()
    def grid(self, images: Tensor) -> Image.Image:
        self.model.eval()
        images = images.to(self.device)
        if self.cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return reconstruction_grid(images, reconstruct(self.model, self.renderer, images), self.renderer)

    def model_config(self, extra: dict[str, Any]) -> ModelConfig:
        return ModelConfig(name=self.cfg.name, autoencoder=self.model.cfg, crop=self.cfg.crop,
                           metadata={"stage1": extra})


def depth_relief(depth: Tensor) -> float:
    """Mean over a batch of the 5-95 percentile range of depth (B, H, W) in the central half of the map."""
    h, w = depth.shape[-2:]
    centre = depth[:, h // 4: 3 * h // 4, w // 4: 3 * w // 4].flatten(1)
    q = torch.quantile(centre.float(), torch.tensor([0.05, 0.95], device=depth.device), dim=1)
    return float((q[1] - q[0]).mean())


def nose_relief(depth: Tensor, keypoints: Tensor) -> float:
    """How far the nose keypoint lies in front of the eyes, in depth units, averaged over a batch.

    Positive for a convex (real) face; negative for the hollow-face solution, which explains the same
    landmarks with the opposite yaw.
    """
    z = depth_at(depth, keypoints)
    return float(((z[:, 0] + z[:, 1]) / 2 - z[:, 2]).mean())


class PoseMonitor:
    """Collects the model's yaw/roll and the landmark estimates over a logging window (pose health)."""

    def __init__(self) -> None:
        self.model_yaw: list[np.ndarray] = []
        self.model_roll: list[np.ndarray] = []
        self.lm: list[np.ndarray] = []

    def reset(self) -> None:
        """Start a new logging window."""
        self.model_yaw, self.model_roll, self.lm = [], [], []

    def add(self, pose: Tensor, landmarks: Tensor | None) -> None:
        if landmarks is None:
            return
        self.model_yaw.append(pose[:, 3].numpy())
        self.model_roll.append(pose[:, 5].numpy())
        self.lm.append(landmarks.numpy())

    def summary(self) -> dict[str, float]:
        """Pearson r of model yaw vs landmark yaw estimate and of roll vs eye-line angle, yaw std (deg)."""
        if not self.lm:
            return {}
        lm = np.concatenate(self.lm)
        yaw, roll = np.concatenate(self.model_yaw), np.concatenate(self.model_roll)
        out = {"yaw_r": pearson(yaw, yaw_estimate(lm)), "roll_r": pearson(roll, roll_estimate(lm)),
               "yaw_std": float(np.std(yaw))}
        self.reset()
        return {k: round(v, 4) for k, v in out.items() if math.isfinite(v)}


def prepare_data(cfg: Stage1Config, cache_dir: Path, progress: bool = True) -> CropDataset:
    """Resolve the sources, crop every image with MTCNN once (cached) and keep the good crops."""
    crops = stage1_crops(cfg, cache_dir, progress)
    good = crops.crops[crops.ok]
    logger.info("stage1 data: %d images, %d usable crops, %s", len(crops), len(good), crops.counts())
    if len(good) < cfg.batch_size:
        raise DataError(f"only {len(good)} usable face crops, fewer than one batch of {cfg.batch_size}")
    return CropDataset(good, flip=True, landmarks=crops.landmarks[crops.ok])


def bundle_data(cfg: Stage1Config) -> Stage1Bundle:
    """Read ``cfg.bundle`` and check it against the recipe.

    The crop size and margin must be the recipe's (the model's config records them for inference):
    :class:`ConfigError` otherwise. A bundle packed from other sources or detection settings is used
    with a warning (its recipe hash is logged and kept in the model's metadata).
    """
    assert cfg.bundle is not None
    bundle = load_bundle(cfg.bundle)
    packed = bundle.crop
    if packed.size != cfg.crop.size or packed.margin != cfg.crop.margin:
        raise ConfigError(f"{cfg.bundle}: crops of size {packed.size} with margin {packed.margin}, "
                          f"the recipe wants size {cfg.crop.size} with margin {cfg.crop.margin}; "
                          "pack the bundle from this recipe")
    if bundle.recipe_hash != json_digest(data_recipe(cfg)):
        logger.warning("%s was packed from other data settings than this recipe's (%s); "
                       "training on the bundle", cfg.bundle, bundle.manifest["recipe"])
    if len(bundle) < cfg.batch_size:
        raise DataError(f"{cfg.bundle}: only {len(bundle)} crops, fewer than one batch of {cfg.batch_size}")
    return bundle


def train(cfg: Stage1Config, out: Path, *, resume: bool = False, cache_dir: Path | None = None,
          progress: bool = True, data: CropDataset | None = None) -> Path:
    """Run (or continue) a stage-1 training; returns the final model folder."""
    device = rank_device(cfg.device)
    place = init_distributed(device)
    rank, world = place.rank, place.world
    out.mkdir(parents=True, exist_ok=True)
    bundle = bundle_data(cfg) if data is None and cfg.bundle is not None else None
    if data is not None:
        dataset = data
    elif bundle is not None:
        dataset = bundle.dataset()
    else:
        dataset = prepare_data(cfg, cache_dir or out / "cache", progress and rank == 0)
    keypoints = None
    if dataset.landmarks is not None and cfg.lambda_landmark > 0:
        keypoints = canonical_keypoints(dataset.landmarks)
        logger.info("canonical keypoints (u, v): %s", np.round(keypoints, 4).tolist())
    feature_state = None
    if (bundle is not None and bundle.features is not None
            and bundle.manifest.get("feature_net") == cfg.feature_net):
        feature_state = bundle.features
    trainer = Stage1Trainer(cfg, device, keypoints, feature_state)
    monitor = PoseMonitor()
    ckpt = out / "checkpoint"
    state = TrainState()
    if resume and (ckpt / "trainer_state.pt").is_file():
        state = load_checkpoint(ckpt, trainer.model, trainer.optimizer)
        logger.info("resumed from %s at step %d", ckpt, state.step)
    elif cfg.init_from is not None:
        _, tensors = load_weights(Path(cfg.init_from))
        load_part(trainer.model, tensors, AUTOENCODER, cfg.init_from)
        logger.info("weights initialised from %s", cfg.init_from)
    n = len(dataset)
    fixed = load_batch(dataset, torch.arange(min(8, n)), torch.zeros(min(8, n), dtype=torch.bool))
    log_file = out / "train.log"
    bar = tqdm(total=cfg.steps, initial=state.step, desc="stage1", unit="step",
               disable=not progress or rank != 0)
    t_last, imgs_since = time.perf_counter(), 0
    meta: dict[str, Any] = {"steps": cfg.steps, "batch_size": cfg.batch_size, "world_size": world,
                            "images": n, "sources": cfg.sources, "feature_net": cfg.feature_net,
                            "renderer": trainer.renderer.backend, "lambda_landmark": cfg.lambda_landmark,
                            "lambda_light_cycle": cfg.lambda_light_cycle,
                            "augment_roll_deg": cfg.augment_roll_deg,
                            "augment_grey_p": cfg.augment_grey_p, "augment_low_res_p": cfg.augment_low_res_p,
                            "region_weight": cfg.region_weight, "keypoint_blur": cfg.keypoint_blur,
                            "photo_confidence": cfg.photo_confidence,
                            "feature_region_weight": cfg.feature_region_weight, "init_from": cfg.init_from,
                            "amp": cfg.amp, "channels_last": cfg.channels_last}
    if bundle is not None:
        meta["bundle"] = {"file": Path(bundle.path).name, "recipe_hash": bundle.recipe_hash,
                          "crops": len(bundle), "sources": bundle.manifest["recipe"]["sources"]}
    if keypoints is not None:
        meta["canonical_keypoints"] = np.round(keypoints, 5).tolist()
    while state.step < cfg.steps:
        idx = batch_indices(n, state.step, cfg.batch_size, cfg.seed, rank, world)
        flips = flips_for(state.step, len(idx), cfg.seed, rank, world)
        batch = load_batch(dataset, idx, flips)
        landmarks = load_landmarks(dataset, idx, flips)
        plan = augment_plan(state.step, len(idx), cfg.seed, rank, world=world, roll_deg=cfg.augment_roll_deg,
                            roll_p=cfg.augment_roll_p, grey_p=cfg.augment_grey_p,
                            low_res_p=cfg.augment_low_res_p)
        batch, landmarks = plan.apply(batch, landmarks)
        t0 = time.perf_counter()
        parts = trainer.step(batch, landmarks)
        monitor.add(trainer.last_pose, landmarks)
        state.elapsed += time.perf_counter() - t0
        state.step += 1
        imgs_since += len(idx) * world
        bar.update(1)
        bar.set_postfix(loss=f"{parts['loss']:.3f}", l1=f"{parts['l1']:.3f}", refresh=False)
        log_now = state.step % cfg.log_every == 0 or state.step == cfg.steps
        if log_now and world > 1:
            parts = mean_over_ranks(parts)  # the global batch's loss (every rank takes part)
        if rank != 0:
            continue
        if log_now:
            now = time.perf_counter()
            record = {"step": state.step, **{k: round(v, 5) for k, v in parts.items()}, **monitor.summary(),
                      "images_per_s": round(imgs_since / (now - t_last), 3),
                      "train_seconds": round(state.elapsed, 1)}
            t_last, imgs_since = now, 0
            append_log(log_file, record)
        if state.step % cfg.grid_every == 0 or state.step == cfg.steps:
            (out / "grids").mkdir(exist_ok=True)
            trainer.grid(fixed).save(out / "grids" / f"step_{state.step:07d}.png")
        if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps:
            save_checkpoint(ckpt, trainer.model,
                            trainer.model_config({**meta, "trained_steps": state.step,
                                                  "train_seconds": round(state.elapsed)}),
                            trainer.optimizer, state)
    bar.close()
    final = out / "model"
    agree = rank_weights(trainer.model)  # every rank takes part
    if rank == 0:
        save_model_folder(final, trainer.model_config({**meta, "trained_steps": state.step,
                                                       "train_seconds": round(state.elapsed), **agree}),
                          prefixed(trainer.model, AUTOENCODER))
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    return final


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m latentface_sdk.train stage1``."""
    parser = command_parser(
        "stage1", __doc__.splitlines()[0],
        "examples:\n"
        "  OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m latentface_sdk.train stage1 \\\n"
        "      --config latentface_sdk/train/configs/stage1_default.json --out runs/stage1 \\\n"
        "      --shared-root ../shared/data --cache-dir runs/cache --resume\n"
        "  latentface-train stage1 --out runs/tiny --shared-root ../shared/data --max-images 256 --steps 20\n"
        "  latentface-train stage1 --config latentface_sdk/train/configs/stage1_finetune.json \\\n"
        "      --init-from runs/stage1/model --out runs/stage1-ft --shared-root ../shared/data\n"
        "  latentface-train stage1 --config latentface_sdk/train/configs/stage1_gpu.json \\\n"
        "      --bundle stage1_default.bundle --out runs/stage1-gpu --device cuda")
    parser.add_argument("--config", type=Path, help="stage-1 recipe (JSON); defaults to the built-in one")
    parser.add_argument("--out", type=Path, required=True,
                        help="run folder (logs, grids, checkpoints, model)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint if present")
    parser.add_argument("--steps", type=int, help="override the number of steps")
    add_data_options(parser, cache_default=None, cache_note="default RUN/cache", sample_note="quick runs")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--init-from", help="start from the weights of this stage-1 model folder or "
                        "checkpoint in parts (fine-tuning)")
    parser.add_argument("--bundle", help="train on this training bundle (latentface-train bundle) instead of "
                        "the recipe's sources")
    parser.add_argument("--amp", choices=("off", "bf16"), help="override the recipe's mixed precision")
    parser.add_argument("--channels-last", action="store_true", help="channels-last weights and batches")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = stage1_recipe(args)
    if args.steps is not None:
        cfg.steps = args.steps
    if args.device:
        cfg.device = args.device
    if args.init_from:
        cfg.init_from = args.init_from
    if args.bundle:
        cfg.bundle = args.bundle
    if args.amp:
        cfg.amp = args.amp
    if args.channels_last:
        cfg.channels_last = True
    final = train(cfg, args.out, resume=args.resume, cache_dir=args.cache_dir, progress=not args.no_progress)
    print(f"stage 1 model written to {final}")
    return 0
