"""Typed configuration: one dataclass tree for model, loss, augmentation, data and schedule.

YAML in, unknown keys rejected, dotted overrides (``train.max_epochs=3``) on the command line;
the resolved config is written beside every run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from trans3dhead.errors import Trans3DHeadError


@dataclass
class ModelConfig:
    """Every value that changes the network (ablation switches included)."""

    backbone_width: float = 0.5
    crop_size: int = 120
    dim: int = 64
    num_layers: int = 2
    num_heads: int = 4
    ffn_dim: int = 128
    qamem: bool = True
    marr: bool = True
    cross_branch: bool = True
    param_branch: bool = True  # False: landmark branch only (parameters stay at the mean)
    dropout: float = 0.0
    landmark_source: str = "branch"  # final answer: "branch", "3dmm" or "fused" (their mean)


@dataclass
class LossConfig:
    """Weights of the multi-information loss terms (training/losses.py); 0 switches a term off."""

    landmark: float = 1.0  # 2D (x, y) L1 on the landmark branch, pixels
    depth: float = 0.2  # z L1 on the landmark branch, pixels
    param: float = 0.5  # smooth L1 on normalised parameters
    vertex: float = 0.5  # L1 of the 68 points decoded from the predicted parameters, pixels
    cross_branch: float = 0.1  # decoded-3DMM landmarks vs the landmark branch (both ways)
    euler: float = 0.05  # smooth L1 on yaw/pitch/roll decoded from the predicted pose, degrees
    human_landmark: float = 0.0  # extra 2D L1 against human labels where present


@dataclass
class AugmentConfig:
    """Training augmentation (data/transforms.py)."""

    scale: float = 0.1  # crop scale jitter, +- fraction
    shift: float = 0.06  # centre shift, +- fraction of the crop
    rotate_deg: float = 20.0  # in-plane rotation, +- degrees
    flip: float = 0.5  # probability
    color: float = 0.3  # brightness/contrast/colour jitter strength
    grey: float = 0.05  # probability of a grey image
    blur: float = 0.1  # probability of a Gaussian blur
    noise: float = 0.1  # probability of Gaussian noise
    occlude: float = 0.2  # probability of a synthetic occluder


NEAR_DUPLICATES = "../shared/data/aflw_crops/excluded_near_duplicates_of_aflw2000_3d.csv"


@dataclass
class DataConfig:
    crops_root: str = "../shared/data/aflw_crops"
    merl_rav_root: str | None = "../shared/data/merl_rav"  # human labels; None = teacher only
    val_split: str = "configs/splits/aflw_crops_val.txt"
    cache_dir: str = "cache"
    limit: int | None = None  # use only the first N training crops (tests, probes)
    teacher: str = "3ddfa-mb05"
    teacher_flip_average: bool = True  # online teacher only; cached labels are always flip-averaged
    # Cached teacher labels (made once, ~2 min for all crops): a .npz path, or None for the online teacher
    teacher_labels: str | None = None
    # Crops never trained or validated on (CSV files with a crop_name column): the near-duplicates of
    # AFLW2000-3D photos by default. The shipped weights of before this list set it to [].
    exclude: list[str] = field(default_factory=lambda: [NEAR_DUPLICATES])


@dataclass
class ScheduleConfig:
    seed: int = 0
    max_epochs: int = 16
    batch_size: int = 64
    lr: float = 1e-3
    backbone_lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    threads: int = 2
    init_backbone: str | None = "3ddfa-mb05"  # named weights whose backbone initialises ours
    init_weights: str | None = None  # a trans3dhead weights file or checkpoint: start from the whole model
    log_every_n_steps: int = 20
    val_every_n_epochs: int = 1
    limit_val: int | None = None
    # Passed to Lightning's Trainer unchanged: e.g. accelerator=gpu devices=8 num_nodes=2 strategy=ddp
    accelerator: str = "cpu"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: ScheduleConfig = field(default_factory=ScheduleConfig)
    name: str = "run"


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise Trans3DHeadError(f"config {where or 'root'}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise Trans3DHeadError(f"config {where or 'root'}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{where}.{name}".lstrip("."))
        else:
            kwargs[name] = value
    return cls(**kwargs)


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    for item in overrides:
        if "=" not in item:
            raise Trans3DHeadError(f"override '{item}': expected key.path=value")
        key, raw = item.split("=", 1)
        node = values
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)  # "3" -> 3, "false" -> False, "a" -> "a"
    return values


def load_config(path=None, overrides: list[str] | None = None) -> Config:
    values = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise Trans3DHeadError(f"config file not found: {p}")
        try:
            values = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise Trans3DHeadError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    values = apply_overrides(values, overrides or [])
    return _build(Config, values, "")


def config_to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
