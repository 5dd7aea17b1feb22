"""Typed configuration: one dataclass tree for model, loss, augmentation, data and schedule.

YAML in, unknown keys rejected, dotted overrides (``train.max_epochs=3``) on the command line;
the resolved config is written beside every run.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from trans3dhead.errors import Trans3DHeadError


LANDMARK_SOURCES = ("branch", "3dmm", "fused")


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
    landmark_source: str = "branch"  # final answer: "branch", "3dmm" or "fused" (their weighted mean)
    branch_weight: float = 0.5  # fused = branch_weight x branch + (1 - branch_weight) x 3DMM landmarks
    visibility: bool = False  # a per-landmark visibility head (fitted by `trans3dhead train-visibility`)
    visibility_hidden: int = 0  # its shared hidden width; 0 = each landmark's own linear map of its query
    face_score: bool = False  # a face-score head (fitted by `trans3dhead train-face-score`)

    def __post_init__(self):
        if self.landmark_source not in LANDMARK_SOURCES:  # also checks weights files' model_config
            raise Trans3DHeadError(f"model.landmark_source={self.landmark_source!r}: must be one of "
                                   f"{', '.join(LANDMARK_SOURCES)}")
        if not 0.0 < self.branch_weight <= 1.0:
            raise Trans3DHeadError(f"model.branch_weight={self.branch_weight!r}: must be in (0, 1]")


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
    visibility: float = 0.0  # cross-entropy of the visibility head (model.visibility) on MERL-RAV's classes


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
    # MERL-RAV's jaw follows the visible contour, the teacher's (and AFLW2000-3D's) the 3D jaw line:
    # human jaw points (0-16) are used only on faces whose |yaw| (the crops' own estimate) is at most
    # this many degrees; None uses them on every face.
    human_jaw_max_yaw_deg: float | None = None
    # Teacher labels of the human-labelled training crops refitted to the human points
    # (training/refit.py): the prior's spread in units of the BFM parameter spread (None: off),
    # the human points' sigma (pixels) and the rotation prior (degrees; 0 keeps the teacher's angles).
    teacher_refit_prior: float | None = None
    teacher_refit_sigma_px: float = 2.0
    teacher_refit_rotation_deg: float = 0.0


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
class VisibilityFitConfig:
    """Fitting the visibility head on a trained, frozen network (training/visibility.py)."""

    hidden: int = 64  # the shared hidden width before each landmark's own linear map; 0 = none
    views: int = 4  # views of each labelled crop: direct, mirrored, then augmented (data/transforms.py)
    epochs: int = 12
    batch_size: int = 8192  # landmark rows per step
    lr: float = 3e-3
    weight_decay: float = 1e-4
    # fit on query states standardised per feature (the training rows' mean and spread), folded
    # into the head's first linear map afterwards (the head computes the same function on raw states)
    standardise: bool = False
    seed: int = 0


@dataclass
class FaceScoreFitConfig:
    """Fitting the face-score head on a trained, frozen network (training/face_score.py)."""

    positives: int = 6000  # training-split face crops, each jittered as a detector's crop would be
    shifted: int = 3000  # training-split face crops shifted by half their side (a crop off the face)
    boxes_per_image: int = 150  # random square crops on each training non-face image
    boxes_per_texture: int = 40  # the same on each texture made by synthetic_textures
    weight_decay: float = 1e-3  # L2 on the standardised weights
    # The faces' augmentation beyond the detector's jitter: an in-plane turn of up to positive_roll
    # degrees, and with probability positive_occlusion a patch of a non-face image over 15-40 % of it.
    positive_roll: float = 0.0
    positive_occlusion: float = 0.0
    # Animal faces as non-faces (training/animals.py): the folder the photos were fetched into
    # (None: no animals, e.g. tests), the detectors that find their faces (every box of each, each
    # cropped by its own policy) and the threshold they run at, and the crops jittered from each
    # such detection (scale 0.9-1.1, shift up to 5 %).
    animal_dir: str | None = None
    animal_detectors: list[str] = field(default_factory=lambda: ["retinaface"])
    animal_detector_threshold: float = 0.3
    animal_jitters: int = 40
    seed: int = 0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: ScheduleConfig = field(default_factory=ScheduleConfig)
    visibility: VisibilityFitConfig = field(default_factory=VisibilityFitConfig)
    face_score: FaceScoreFitConfig = field(default_factory=FaceScoreFitConfig)
    name: str = "run"


def _type_name(tp) -> str:
    if isinstance(tp, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return {type(None): "null", int: "a whole number", float: "a number", bool: "true or false", str: "a string",
            list[str]: "a list of strings, e.g. [a.csv, b.csv]"}.get(tp, str(tp))


def _matches(tp, value) -> bool:
    """Whether a YAML value fits a field's annotation (the few kinds the config tree uses)."""
    if isinstance(tp, types.UnionType):
        return any(_matches(a, value) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:  # a whole number is a number too ("lr: 1")
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_matches(item, v) for v in value)
    raise TypeError(f"config field type {tp} is not handled")  # a new kind of field: teach _matches


def _yaml11_float(tp, value):
    """PyYAML reads 1e-3 (no dot) as the string '1e-3'; a field holding a number takes it as 0.001."""
    if isinstance(value, str) and _matches(tp, 0.5) and not _matches(tp, value):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise Trans3DHeadError(f"config {where or 'root'}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise Trans3DHeadError(f"config {where or 'root'}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        key = f"{where}.{name}".lstrip(".")
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = _build(hints[name], value, key)
            continue
        value = _yaml11_float(hints[name], value)
        if not _matches(hints[name], value):
            raise Trans3DHeadError(f"config {key}={value!r}: expected {_type_name(hints[name])}, "
                                   f"got {type(value).__name__}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _field_type(schema, parts: list[str], item: str):
    """The annotation at a dotted path of the config tree; a one-line error for a wrong path."""
    tp, done = schema, []
    for part in parts:
        if not dataclasses.is_dataclass(tp):
            raise Trans3DHeadError(f"override '{item}': {'.'.join(done)} is a value ({_type_name(tp)}), "
                                   f"not a section with keys")
        hints = typing.get_type_hints(tp)
        if part not in hints:
            where = ".".join(done) or "root"
            raise Trans3DHeadError(f"override '{item}': unknown key '{part}' in config {where}; known: "
                                   f"{sorted(hints)}")
        tp = hints[part]
        done.append(part)
    if dataclasses.is_dataclass(tp):
        example = dataclasses.fields(tp)[0].name
        raise Trans3DHeadError(f"override '{item}': {'.'.join(done)} is a section; set one of its keys, "
                               f"e.g. {'.'.join(done)}.{example}=...")
    return tp


def apply_overrides(values: dict, overrides: list[str], schema=None) -> dict:
    """Dotted overrides (``train.max_epochs=3``) applied to a YAML mapping. Each path must name a
    value of the config tree (schema, default Config); the value is read as YAML ("3" -> 3,
    "false" -> False, "null" -> None), except that a field holding text keeps the text as typed
    (``name=2024`` is the name "2024"). Types are checked when the tree is built."""
    schema = Config if schema is None else schema
    for item in overrides:
        if "=" not in item:
            raise Trans3DHeadError(f"override '{item}': expected key.path=value")
        key, raw = item.split("=", 1)
        parts = key.split(".")
        tp = _field_type(schema, parts, item)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise Trans3DHeadError(f"override '{item}': value is not valid YAML "
                                   f"({str(exc).splitlines()[0]})") from None
        if isinstance(value, (bool, int, float)) and _matches(tp, raw) and not _matches(tp, value):
            value = raw
        node = values
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise Trans3DHeadError(f"override '{item}': config {'.'.join(parts[:depth + 1])} is not a mapping "
                                       "in the YAML file")
        node[parts[-1]] = value
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
