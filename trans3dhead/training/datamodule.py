"""The data side of training: the AFLW training crops (all decoded once and cached), the
validation split and exclusion lists, cached teacher labels moved with each augmentation, and
MERL-RAV human labels mapped onto the crops.

Seeds fix the sampler order and every sample's augmentation per (seed, epoch, index), so a run
resumed from an epoch-end checkpoint reproduces the uninterrupted run.
"""
from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from trans3dhead.config import AugmentConfig, Config
from trans3dhead.data.aflw_crops import AFLWCrops, read_exclusion_lists, read_split
from trans3dhead.data.merl_rav import MerlRav
from trans3dhead.data.transforms import apply_points, flip_image, photometric, similarity, warp_pkg
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.face_model.frames import CROP_SIZE, MIRROR_2D
from trans3dhead.face_model.landmarks68 import FLIP_PERM_68, JAW, mirror_landmarks
from trans3dhead.fileio import atomic_path
from trans3dhead.training.labels import VIEW_KEYS, label_views, transform_labels, write_label_cache
from trans3dhead.weights import load_network


class CropDataset(Dataset):
    """Training or validation crops; items are uint8 CHW tensors plus optional human labels."""

    def __init__(self, crops: np.ndarray, indices: np.ndarray, augment: AugmentConfig | None, seed: int,
                 human: dict | None = None, labels: dict | None = None, jaw_off: np.ndarray | None = None):
        self.crops, self.indices, self.augment, self.seed = crops, indices, augment, seed
        self.human = human or {}
        self.jaw_off = jaw_off  # per crop index: True = its human jaw points are not used
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
                    pts, vis = mirror_landmarks(pts, CROP_SIZE), vis[..., FLIP_PERM_68]
                m, view = MIRROR_2D @ np.vstack([m, [0, 0, 1]]) @ MIRROR_2D, "mirror_"  # flip(warp(c, m)) = warp(flip(c), m')
                m = m[:2]
            student = photometric(img, rng, self.augment)
        item = {"clean": torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1),
                "student": torch.from_numpy(np.ascontiguousarray(student)).permute(2, 0, 1),
                "index": idx}
        if self.labels is not None:
            moved = transform_labels({k: self.labels[view + k][idx] for k in VIEW_KEYS}, m, CROP_SIZE)
            item.update({"teacher_" + k: torch.from_numpy(v) for k, v in moved.items()})
        # MERL-RAV's class of each point (0 self-occluded, 1 occluded, 2 visible; -1 = no label): the
        # visibility term's target, mirrored with the points
        item["human_vis"] = torch.from_numpy(np.full(68, -1, np.int64) if vis is None else vis.astype(np.int64))
        if pts is None:
            pts, w = np.zeros((68, 2), np.float32), np.zeros(68, np.float32)
        else:
            w = (np.isfinite(pts).all(-1) & (vis > 0)).astype(np.float32)
            if self.jaw_off is not None and self.jaw_off[idx]:
                w[JAW] = 0.0
            pts = np.nan_to_num(pts).astype(np.float32)
        item["human_lm"], item["human_weight"] = torch.from_numpy(pts), torch.from_numpy(w)
        return item


class EpochSampler(Sampler):
    """A shuffle fixed by (seed, epoch); set_epoch also moves the dataset's augmentation seed.

    With several processes (DDP), rank r of W takes every W-th index of that same order, starting
    at r, after the tail that does not divide by W is dropped: the shards are disjoint and equally
    long (every rank runs the same number of steps; a rank left one batch short would hang the
    others). With W = 1 the order is the whole permutation, exactly as a single-process run has it.
    """

    def __init__(self, dataset: CropDataset, seed: int, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise Trans3DHeadError(f"sampler rank {rank} is outside a world of {world_size} process(es)")
        self.dataset, self.seed, self.epoch = dataset, seed, 0
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.dataset.epoch = epoch

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch, 7]).permutation(len(self.dataset))
        if self.world_size > 1:
            order = order[:len(self) * self.world_size][self.rank::self.world_size]
        return iter(order.tolist())

    def __len__(self) -> int:
        return len(self.dataset) // self.world_size


class CropsDataModule(L.LightningDataModule):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config

    def setup(self, stage: str | None = None) -> None:
        if hasattr(self, "train_set"):
            return
        d = self.config.data
        reader = AFLWCrops(d.crops_root)
        val_names = read_split(d.val_split)
        is_val = np.array([n in val_names for n in reader.names])
        excluded, self.exclusions = read_exclusion_lists(d.exclude, val_names)
        keep = np.array([n not in excluded for n in reader.names])
        train_idx, val_idx = np.flatnonzero(~is_val & keep), np.flatnonzero(is_val & keep)
        if d.limit:
            train_idx = train_idx[:d.limit]
        if self.config.train.limit_val:
            val_idx = val_idx[:self.config.train.limit_val]
        human = _human_labels(d.merl_rav_root, reader) if d.merl_rav_root else {}
        jaw_off = None if d.human_jaw_max_yaw_deg is None else np.abs(reader.yaw_deg) > d.human_jaw_max_yaw_deg
        self.reader_yaw_deg = reader.yaw_deg
        if d.limit:  # a small run decodes only its own crops
            used = np.concatenate([train_idx, val_idx])
            self.crops = np.stack([reader.read_crop(int(i)) for i in used])
            position = {int(i): k for k, i in enumerate(used)}
            human = {position[i]: v for i, v in human.items() if i in position}
            jaw_off = None if jaw_off is None else jaw_off[used]
            self.reader_yaw_deg = reader.yaw_deg[used]
            train_idx, val_idx = np.arange(len(train_idx)), np.arange(len(train_idx), len(used))
        else:
            self.crops = cached_crops(reader, Path(d.cache_dir))
        labels = None
        if d.teacher_labels:
            labels = _cached_labels(self.crops, d, None if d.limit else reader.names)
        if labels is not None and d.teacher_refit_prior:
            from trans3dhead.training.refit import refit_labels

            labels = refit_labels(labels, human, train_idx, jaw_off, d.teacher_refit_prior, d.teacher_refit_sigma_px,
                                  CROP_SIZE, d.teacher_refit_rotation_deg)
        seed = self.config.train.seed
        self.train_set = CropDataset(self.crops, train_idx, self.config.augment, seed, human, labels, jaw_off)
        self.val_set = CropDataset(self.crops, val_idx, None, seed, human, labels)
        # Each process of a multi-process run (DDP) draws its own shard of the one (seed, epoch) order;
        # the Trainer is told not to put a sampler of its own over it (run.py).
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        self.sampler = EpochSampler(self.train_set, seed, rank, world)
        self.summary = {"train_crops": int(len(train_idx)), "val_crops": int(len(val_idx)),
                        "human_labelled_train_crops": int(sum(int(i) in human for i in train_idx)),
                        "exclusions": self.exclusions}
        if rank == 0:
            print(f"crops: {len(train_idx)} training, {len(val_idx)} validation "
                  f"({sum(r['count'] for r in self.exclusions)} listed in exclusion lists)", flush=True)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.config.train.batch_size, sampler=self.sampler,
                          num_workers=0, drop_last=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=200, shuffle=False, num_workers=0)


def cached_crops(reader: AFLWCrops, cache_dir: Path) -> np.ndarray:
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


def _human_labels(root, reader: AFLWCrops) -> dict:
    """{crop index: (pts68 (68, 2) crop frame, visibility (68,))} from MERL-RAV."""
    labels = MerlRav(root, reader).crop_labels()
    return {int(i): (p, v) for i, p, v in zip(labels["crop_index"], labels["pts68"], labels["visibility"])}
