"""Lightning glue for training Trans3DHead: the system (model + loss + teacher + optimiser), the
data module over the AFLW training crops, and the run launcher. No layers are defined here.

Labels come from the teacher, either cached once per crop (direct and mirrored views, moved
exactly with each sample's similarity; ``data.teacher_labels``) or run online on each
geometrically augmented crop, optionally plus MERL-RAV human landmarks mapped onto the crops.
The student sees the crop after photometric augmentation and occluders, which the teacher never
sees. Seeds fix the sampler order and every sample's augmentation per (seed, epoch,
index), so a run resumed from an epoch-end checkpoint reproduces the uninterrupted run.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from torch.utils.data import DataLoader, Dataset, Sampler

from trans3dhead.config import Config, config_to_dict, dump_config
from trans3dhead.data.aflw_crops import AFLWCrops, read_exclusion_list
from trans3dhead.data.merl_rav import MerlRav
from trans3dhead.data.transforms import (FLIP_PERM_68, AugmentConfig, apply_points, flip_image, flip_points,
                                         photometric, similarity, warp_pkg)
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.evaluate import nme_per_face
from trans3dhead.face_model.pose import pose_deg_from_params
from trans3dhead.fileio import atomic_path, atomic_write_text
from trans3dhead.labels import VIEW_KEYS, Teacher, label_views, transform_labels
from trans3dhead.losses import MultiInformationLoss
from trans3dhead.model.trans3dhead import build_model
from trans3dhead.weights import load_network, read_weights, resolve_weights

CROP_SIZE = 120
INNER = slice(17, 68)
_MIRROR = np.array([[-1.0, 0, CROP_SIZE], [0, 1.0, 0], [0, 0, 1.0]])  # x -> S - x, package frame


class CropDataset(Dataset):
    """Training or validation crops; items are uint8 CHW tensors plus optional human labels."""

    def __init__(self, crops: np.ndarray, indices: np.ndarray, augment: AugmentConfig | None, seed: int,
                 human: dict | None = None, labels: dict | None = None):
        self.crops, self.indices, self.augment, self.seed = crops, indices, augment, seed
        self.human = human or {}
        self.labels = labels  # label_views() arrays indexed like crops, or None (online teacher)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        idx = int(self.indices[i])
        img = self.crops[idx]
        human = self.human.get(idx)
        pts = None if human is None else human[0].copy()
        vis = None if human is None else human[1]
        student, m, view = img, np.array([[1.0, 0, 0], [0, 1.0, 0]]), ""
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, idx])
            m = similarity(rng, self.augment, CROP_SIZE)
            img = warp_pkg(img, m, CROP_SIZE)
            if pts is not None:
                pts = apply_points(m, pts)
            if rng.random() < self.augment.flip:
                img = np.ascontiguousarray(flip_image(img))
                if pts is not None:
                    pts, vis = flip_points(pts, CROP_SIZE), vis[..., FLIP_PERM_68]
                m, view = _MIRROR @ np.vstack([m, [0, 0, 1]]) @ _MIRROR, "mirror_"  # flip(warp(c, m)) = warp(flip(c), m')
                m = m[:2]
            student = photometric(img, rng, self.augment)
        item = {"clean": torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1),
                "student": torch.from_numpy(np.ascontiguousarray(student)).permute(2, 0, 1),
                "index": idx}
        if self.labels is not None:
            moved = transform_labels({k: self.labels[view + k][idx] for k in VIEW_KEYS}, m, CROP_SIZE)
            item.update({"teacher_" + k: torch.from_numpy(v) for k, v in moved.items()})
        if pts is None:
            pts, w = np.zeros((68, 2), np.float32), np.zeros(68, np.float32)
        else:
            w = (np.isfinite(pts).all(-1) & (vis > 0)).astype(np.float32)
            pts = np.nan_to_num(pts).astype(np.float32)
        item["human_lm"], item["human_weight"] = torch.from_numpy(pts), torch.from_numpy(w)
        return item


class EpochSampler(Sampler):
    """A shuffle fixed by (seed, epoch); set_epoch also moves the dataset's augmentation seed."""

    def __init__(self, dataset: CropDataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.dataset.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch, 7]).permutation(len(self.dataset)).tolist())

    def __len__(self) -> int:
        return len(self.dataset)


class CropsDataModule(L.LightningDataModule):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config

    def setup(self, stage: str | None = None) -> None:
        if hasattr(self, "train_set"):
            return
        d = self.config.data
        reader = AFLWCrops(d.crops_root)
        val_path = Path(d.val_split)
        if not val_path.is_file():
            raise Trans3DHeadError(f"validation split file not found: {val_path}")
        val_names = {ln.strip() for ln in val_path.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
        is_val = np.array([n in val_names for n in reader.names])
        excluded, self.exclusions = set(), []
        for path in d.exclude:
            names, record = read_exclusion_list(path)
            record["in_validation_split"] = int(sum(n in val_names for n in names))
            excluded |= names
            self.exclusions.append(record)
        keep = np.array([n not in excluded for n in reader.names])
        train_idx, val_idx = np.flatnonzero(~is_val & keep), np.flatnonzero(is_val & keep)
        if d.limit:
            train_idx = train_idx[:d.limit]
        if self.config.train.limit_val:
            val_idx = val_idx[:self.config.train.limit_val]
        human = _human_labels(d.merl_rav_root, reader) if d.merl_rav_root else {}
        if d.limit:  # a small run decodes only its own crops
            used = np.concatenate([train_idx, val_idx])
            self.crops = np.stack([reader.read_crop(int(i)) for i in used])
            position = {int(i): k for k, i in enumerate(used)}
            human = {position[i]: v for i, v in human.items() if i in position}
            train_idx, val_idx = np.arange(len(train_idx)), np.arange(len(train_idx), len(used))
        else:
            self.crops = _cached_crops(reader, Path(d.cache_dir))
        labels = None
        if d.teacher_labels:
            labels = _cached_labels(self.crops, d, None if d.limit else reader.names)
        seed = self.config.train.seed
        self.train_set = CropDataset(self.crops, train_idx, self.config.augment, seed, human, labels)
        self.val_set = CropDataset(self.crops, val_idx, None, seed, human, labels)
        self.sampler = EpochSampler(self.train_set, seed)
        self.summary = {"train_crops": int(len(train_idx)), "val_crops": int(len(val_idx)),
                        "human_labelled_train_crops": int(sum(int(i) in human for i in train_idx)),
                        "exclusions": self.exclusions}
        print(f"crops: {len(train_idx)} training, {len(val_idx)} validation "
              f"({sum(r['count'] for r in self.exclusions)} listed in exclusion lists)", flush=True)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.config.train.batch_size, sampler=self.sampler,
                          num_workers=0, drop_last=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=200, shuffle=False, num_workers=0)


def _cached_crops(reader: AFLWCrops, cache_dir: Path) -> np.ndarray:
    """All crops decoded once into cache_dir/aflw_crops_120.npy (memory-mapped afterwards)."""
    path = cache_dir / "aflw_crops_120.npy"
    if path.is_file():
        arr = np.load(path, mmap_mode="r")  # header check only
        if arr.shape[0] == len(reader):
            return np.load(path)
    arr = reader.load_all_crops()
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, arr)
    return arr


def _cached_labels(crops: np.ndarray, d, names: list[str] | None) -> dict:
    """Teacher labels of every crop (label_views), kept in d.teacher_labels with their provenance.

    names None (a run limited to a few crops): labelled in memory, nothing written."""
    if names is None:
        return label_views(load_network(d.teacher), crops)
    path = Path(d.teacher_labels)
    if path.is_file():
        z = np.load(path)
        if str(z["teacher"]) != d.teacher:
            raise Trans3DHeadError(f"{path}: labels made by {z['teacher']}, not {d.teacher}; delete it to relabel")
        if list(z["names"]) != list(names):
            raise Trans3DHeadError(f"{path}: labels made for other crops than {d.crops_root}; delete it to relabel")
        return {k: z[k] for k in z.files if k.removeprefix("mirror_") in VIEW_KEYS}
    print(f"labelling {len(crops)} crops with {d.teacher} into {path} (once)", flush=True)
    labels = label_views(load_network(d.teacher), crops)
    write_label_cache(path, labels, names, d.teacher)
    return labels


def write_label_cache(path, labels: dict, names, teacher: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, names=np.array(names), teacher=np.array(teacher), flip_average=np.array(True),
                     frame=np.array("package crop frame (pixels, origin at the crop's top-left corner)"),
                     **labels)


def _human_labels(root, reader: AFLWCrops) -> dict:
    """{crop index: (pts68 (68, 2) crop frame, visibility (68,))} from MERL-RAV."""
    labels = MerlRav(root, reader).crop_labels()
    return {int(i): (p, v) for i, p, v in zip(labels["crop_index"], labels["pts68"], labels["visibility"])}


class Trans3DHeadSystem(L.LightningModule):
    """Model, loss, teacher and optimiser; logs every loss term and validation NME."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.save_hyperparameters({"config": config_to_dict(config)})
        self.model = build_model(config.model)
        self.criterion = MultiInformationLoss(config.loss, self.model.face_model, config.model.crop_size)
        # Kept out of the module tree so it never enters the state dict or the optimiser.
        self._teacher = [Teacher(load_network(config.data.teacher), config.data.teacher_flip_average)]
        if config.train.init_backbone:
            ref = read_weights(resolve_weights(config.train.init_backbone))["state_dict"]
            backbone = {k.removeprefix("backbone."): v for k, v in ref.items() if k.startswith("backbone.")}
            self.model.backbone.load_state_dict(backbone, strict=True)
        if config.train.init_weights:  # a second stage starts from a whole trained model
            state = read_weights(resolve_weights(config.train.init_weights))["state_dict"]
            self.model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()}, strict=True)
        self._val = []
        self._t0 = None

    @property
    def teacher(self) -> Teacher:
        return self._teacher[0]

    def forward(self, crops):
        return self.model(crops)

    def _targets(self, batch) -> dict:
        if "teacher_lm" in batch:  # cached labels, already moved with the sample's augmentation
            params = batch["teacher_params"]
            return {"lm": batch["teacher_lm"], "params": params, "params_norm": self.model.face_model.normalize(params),
                    "pose_deg": batch["teacher_pose_deg"]}
        return self.teacher(batch["clean"].float())

    def training_step(self, batch, batch_idx):
        target = self._targets(batch)
        target["human_lm"], target["human_weight"] = batch["human_lm"], batch["human_weight"]
        lm, params_norm = self.model(batch["student"].float())
        total, terms = self.criterion(lm, params_norm, target)
        weights = self.config.loss
        for name, value in terms.items():
            self.log(f"train/{name}", value, on_step=True, prog_bar=name == "landmark")
            self.log(f"train/{name}_scaled", getattr(weights, name) * value, on_step=True)
        self.log("train/total", total, on_step=True, prog_bar=True)
        if self._t0 is not None:
            self.log("train/crops_per_s", len(batch["student"]) / (time.perf_counter() - self._t0), prog_bar=True)
        self._t0 = time.perf_counter()
        return total

    def validation_step(self, batch, batch_idx):
        target = self._targets(batch)
        lm, params_norm = self.model(batch["clean"].float())
        params = self.model.face_model.denormalize(params_norm[-1])
        lm_3dmm = self.model.face_model.landmarks_crop(params, self.config.model.crop_size)
        arrays = {"lm": lm[-1], "lm_3dmm": lm_3dmm, "teacher": target["lm"], "teacher_pose": target["pose_deg"],
                  "pose": pose_deg_from_params(params), "human": batch["human_lm"], "human_w": batch["human_weight"]}
        self._val.append({k: v.detach().cpu().numpy() for k, v in arrays.items()})

    def on_validation_epoch_end(self):
        v = {k: np.concatenate([b[k] for b in self._val]) for k in self._val[0]}
        self._val = []
        for name, pred in (("branch", v["lm"]), ("3dmm", v["lm_3dmm"]), ("fused", (v["lm"] + v["lm_3dmm"]) / 2)):
            self.log(f"val/nme_teacher_{name}", float(nme_per_face(pred, v["teacher"]).mean()))
            full = v["human_w"][:, INNER].all(1)
            if full.any():
                nme = nme_per_face(pred[full][:, INNER], v["human"][full][:, INNER]).mean()
                self.log(f"val/nme_human_inner_{name}", float(nme), prog_bar=name == "branch")
        self.log("val/pose_mae_teacher", float(np.abs(v["pose"] - v["teacher_pose"]).mean()))
        full = v["human_w"][:, INNER].all(1)
        if full.any():
            self.log("val/nme_human_inner_teacher", float(nme_per_face(v["teacher"][full][:, INNER],
                                                                       v["human"][full][:, INNER]).mean()))

    def configure_optimizers(self):
        t = self.config.train
        backbone = list(self.model.backbone.parameters())
        ids = {id(p) for p in backbone}
        rest = [p for p in self.model.parameters() if id(p) not in ids]
        opt = torch.optim.AdamW([{"params": backbone, "lr": t.backbone_lr}, {"params": rest, "lr": t.lr}],
                                weight_decay=t.weight_decay)
        total = max(1, self.trainer.estimated_stepping_batches)

        def factor(step):
            if step < t.warmup_steps:
                return (step + 1) / t.warmup_steps
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - t.warmup_steps) / max(1, total - t.warmup_steps))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_fit_start(self):
        self.teacher.to(self.device)  # the teacher sits outside the module tree, so move it here

    def on_train_epoch_start(self):
        self.trainer.datamodule.sampler.set_epoch(self.current_epoch)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["weights"] = weights_payload(self)


def weights_payload(system: Trans3DHeadSystem) -> dict:
    """The inference weights file content for the system's current model."""
    from dataclasses import asdict

    from trans3dhead.weights import FORMAT, INPUT_SPEC, LANDMARK_FRAME
    state = {"model." + k: v.detach().cpu().clone() for k, v in system.model.state_dict().items()}
    return {"format": FORMAT, "version": 1, "arch": "trans3dhead", "model_config": asdict(system.config.model),
            "input": INPUT_SPEC, "landmark_frame": LANDMARK_FRAME, "state_dict": state,
            "provenance": {"config": config_to_dict(system.config), "epoch": system.current_epoch,
                           "global_step": system.global_step, "code_commit": _code_commit(),
                           "data": getattr(getattr(system.trainer, "datamodule", None), "summary", None)}}


def _code_commit() -> str | None:
    """The git commit of the code that trained (None outside a git checkout)."""
    import subprocess
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() + ("+dirty" if dirty else "")) if out.returncode == 0 else None


class ProgressPrinter(L.Callback):
    """One plain line every N steps (for nohup logs, where a progress bar is unreadable)."""

    def __init__(self, every: int = 50):
        self.every, self.t0 = every, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % self.every == 0:
            m = trainer.callback_metrics
            print(f"epoch {trainer.current_epoch} step {trainer.global_step} "
                  f"loss {float(m.get('train/total', float('nan'))):.3f} "
                  f"landmark {float(m.get('train/landmark', float('nan'))):.3f} "
                  f"elapsed {time.perf_counter() - self.t0:.0f}s", flush=True)

    def on_validation_end(self, trainer, pl_module):
        vals = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        print(f"epoch {trainer.current_epoch} validation {vals}", flush=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary name and renamed: a killed run never leaves half a file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        with atomic_path(path, suffix=".ckpt") as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


def run_training(config: Config, run_dir, resume: bool = False, enable_progress_bar: bool = True):
    """Train (or resume) a run in run_dir; returns the trainer."""
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if resume and not last.is_file():
        raise Trans3DHeadError(f"--resume: no checkpoint to resume at {last}")
    if not resume and last.is_file():
        raise Trans3DHeadError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", dump_config(config))
    torch.set_num_threads(config.train.threads)
    torch.set_flush_denormal(True)  # denormals made steps ~5x slower on this CPU
    L.seed_everything(config.train.seed, workers=True, verbose=False)
    loggers = [CSVLogger(str(run_dir), name="logs", version=0)]
    try:
        from lightning.pytorch.loggers import TensorBoardLogger
        import tensorboard  # noqa: F401
        loggers.append(TensorBoardLogger(str(run_dir), name="tb", version=0))
    except ImportError:
        pass
    # Keep the newest epoch-end checkpoint (save_top_k=1 without a monitor) and a copy as last.ckpt;
    # with save_top_k=0 Lightning writes last.ckpt only when fit ends, which leaves nothing to resume.
    checkpoint = ModelCheckpoint(dirpath=str(ckpt_dir), filename="epoch{epoch:03d}", auto_insert_metric_name=False,
                                 save_last=True, save_top_k=1, every_n_epochs=1)
    callbacks = [checkpoint, LearningRateMonitor("step")]
    if not enable_progress_bar:
        callbacks.append(ProgressPrinter())
    t = config.train
    trainer = L.Trainer(max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices,
                        num_nodes=t.num_nodes, strategy=t.strategy,
                        logger=loggers, callbacks=callbacks,
                        plugins=[AtomicCheckpointIO()], log_every_n_steps=config.train.log_every_n_steps,
                        check_val_every_n_epoch=config.train.val_every_n_epochs, deterministic=False,
                        enable_progress_bar=enable_progress_bar, num_sanity_val_steps=0)
    system = Trans3DHeadSystem(config)
    trainer.fit(system, datamodule=CropsDataModule(config), ckpt_path=str(last) if resume else None)
    return trainer
