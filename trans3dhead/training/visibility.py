"""Fitting the per-landmark visibility head on a trained network kept frozen (a recipe stage
after `trans3dhead train`; `trans3dhead train-visibility`).

Targets: MERL-RAV's class of every one of the 68 points (data/merl_rav.py: 0 self-occluded,
1 externally occluded, 2 visible) on the AFLW training crops it maps, without the validation
split and the exclusion lists (the near-duplicates of AFLW2000-3D photos). Inputs: the last
decoder layer's 68 landmark query states of the frozen network, for ``views`` views of each crop:
as it is, mirrored (the classes move with the left/right permutation), then augmented by the
training augmentation (data/transforms.py) without its synthetic occluders (they would hide points
labelled visible). The head (model/trans3dhead.py VisibilityHead) is fitted by cross-entropy, on
the states as they are or (visibility.standardise) standardised per feature and folded into the
head's first linear map afterwards (the large model's states need it: docs/results.md); the
network's other outputs do not change (the fitted file's landmarks and parameters are the input
file's, bit for bit).

Report (``visibility_report``), on the validation split's labelled crops as they are: per |yaw|
bin (the crops' own AFLW yaw) and class, the count, the one-vs-rest AUC of the class's probability
and the recall of the argmax; the accuracy of the argmax; and the AUC / accuracy of "visible"
(P(visible) >= 0.5) against hidden (either occluded class). Beside it, the same for a pose-only
prior (per landmark, a 3-class logistic of the network's own yaw and pitch), which says how much
the head knows beyond the head pose.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trans3dhead.config import Config
from trans3dhead.data.aflw_crops import AFLWCrops, read_exclusion_lists, read_split
from trans3dhead.data.merl_rav import MerlRav
from trans3dhead.data.transforms import flip_image, photometric, similarity, warp_pkg
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.face_model.bfm import NUM_LANDMARKS
from trans3dhead.evaluation.metrics import roc_auc
from trans3dhead.face_model.frames import CROP_SIZE
from trans3dhead.face_model.landmarks68 import FLIP_PERM_68, VISIBILITY_CLASSES
from trans3dhead.face_model.pose import pose_deg_from_params
from trans3dhead.model.batching import forward_crops
from trans3dhead.model.trans3dhead import VisibilityHead

YAW_BINS = (("all", 0.0, 180.0), ("[0,30]", 0.0, 30.0), ("(30,60]", 30.0, 60.0), (">60", 60.0, 180.0))


def view_crops(crops: np.ndarray, targets: np.ndarray, view: int, cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """View ``view`` of (N, S, S, 3) crops with their (N, 68) classes: 0 as is, 1 mirrored, later
    views a seeded training augmentation (similarity, flip, photometric; no occluders)."""
    if view == 0:
        return crops, targets
    if view == 1:
        return np.ascontiguousarray(crops[:, :, ::-1]), targets[:, FLIP_PERM_68]
    augment = dataclasses.replace(cfg.augment, occlude=0.0)
    out, out_t = np.empty_like(crops), targets.copy()
    size = crops.shape[1]
    for i, img in enumerate(crops):
        rng = np.random.default_rng([cfg.visibility.seed, view, i])
        img = warp_pkg(img, similarity(rng, augment, size), size)
        if rng.random() < augment.flip:
            img, out_t[i] = np.ascontiguousarray(flip_image(img)), targets[i, FLIP_PERM_68]
        out[i] = np.clip(photometric(img, rng, augment), 0, 255)
    return out, out_t


def query_states(predictor: nn.Module, crops: np.ndarray, batch_size: int = 200) -> dict[str, np.ndarray]:
    """(N, S, S, 3) uint8 BGR -> queries (N, 68, D) float32 and the network's pose_deg (N, 3)."""
    model = predictor.model

    def fn(x):
        _, params_norm, q = model.forward_queries(x)
        return {"queries": q[:, :NUM_LANDMARKS], "pose_deg": pose_deg_from_params(model.face_model.denormalize(params_norm[-1]))}

    return forward_crops(fn, crops, batch_size)


class PosePrior(nn.Module):
    """Baseline: per landmark a 3-class logistic of the head pose alone,
    features (1, y, y^2, p, y p) with y = yaw / 90, p = pitch / 90."""

    def __init__(self, num_landmarks: int = 68):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_landmarks, 5, len(VISIBILITY_CLASSES)))

    def forward(self, pose_deg: torch.Tensor) -> torch.Tensor:
        y, p = pose_deg[:, 0] / 90.0, pose_deg[:, 1] / 90.0
        f = torch.stack([torch.ones_like(y), y, y * y, p, y * p], -1)  # (N, 5)
        return torch.einsum("nf,lfc->nlc", f, self.weight)


def fit_classifier(module: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, cfg, log=print) -> nn.Module:
    """Cross-entropy fit of module(inputs[batch]) -> (b, 68, 3) logits against targets (N, 68)
    int64, Adam with a cosine decay; batches of cfg.batch_size landmark rows."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    faces_per_batch = max(1, cfg.batch_size // targets.shape[1])
    steps = cfg.epochs * -(-len(inputs) // faces_per_batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(inputs), generator=gen)
        total, n = 0.0, 0
        for i in range(0, len(order), faces_per_batch):
            idx = order[i:i + faces_per_batch]
            logits = module(inputs[idx])
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), targets[idx].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + float(loss.detach()) * len(idx), n + len(idx)
        log(f"  epoch {epoch}: cross-entropy {total / n:.4f}")
    return module.eval()


def visibility_report(probs: np.ndarray, targets: np.ndarray, yaw_deg: np.ndarray) -> dict:
    """probs (N, 68, 3) in VISIBILITY_CLASSES order, targets (N, 68) class codes, yaw_deg (N,) ->
    {bin: {"faces", "points", "accuracy", "visible_auc", "visible_accuracy", class: {"count", "auc",
    "recall"}}} per |yaw| bin of YAW_BINS."""
    out = {}
    a = np.abs(np.asarray(yaw_deg, np.float64))
    for name, lo, hi in YAW_BINS:
        faces = (a >= lo) & (a <= hi) if lo == 0.0 else (a > lo) & (a <= hi)
        p, t = probs[faces].reshape(-1, probs.shape[-1]), targets[faces].reshape(-1)
        r = {"faces": int(faces.sum()), "points": int(len(t))}
        if len(t):
            r["accuracy"] = float((p.argmax(-1) == t).mean())
            visible = len(VISIBILITY_CLASSES) - 1
            r["visible_auc"] = roc_auc(p[:, visible], t == visible)
            r["visible_accuracy"] = float(((p[:, visible] >= 0.5) == (t == visible)).mean())
            for c, cname in enumerate(VISIBILITY_CLASSES):
                m = t == c
                r[cname] = {"count": int(m.sum()), "auc": roc_auc(p[:, c], m),
                            "recall": float((p[m].argmax(-1) == c).mean()) if m.any() else float("nan")}
        out[name] = r
    return out


def format_report(reports: dict[str, dict]) -> str:
    """A markdown table of visibility_report results, one row per (head, yaw bin)."""
    cls = VISIBILITY_CLASSES
    lines = ["| head | |yaw| | faces | points | accuracy | visible AUC | visible acc. | "
             + " | ".join(f"{c} (n) AUC / recall" for c in cls) + " |",
             "|---" * (7 + len(cls)) + "|"]
    for head, rep in reports.items():
        for name, r in rep.items():
            if not r["points"]:
                continue
            per = " | ".join(f"({r[c]['count']}) {r[c]['auc']:.3f} / {r[c]['recall']:.3f}" for c in cls)
            lines.append(f"| {head} | {name} | {r['faces']} | {r['points']} | {r['accuracy']:.3f} | "
                         f"{r['visible_auc']:.3f} | {r['visible_accuracy']:.3f} | {per} |")
    return "\n".join(lines)


def labelled_split(cfg: Config, reader: AFLWCrops) -> dict[str, np.ndarray]:
    """Crop indices and MERL-RAV classes of the labelled training and validation crops, without
    the exclusion lists: train_index, train_targets, val_index, val_targets, and exclusions."""
    d = cfg.data
    if not d.merl_rav_root:
        raise Trans3DHeadError("data.merl_rav_root: the visibility head is fitted on MERL-RAV's classes; set it")
    val_names = read_split(d.val_split)
    excluded, records = read_exclusion_lists(d.exclude, val_names)
    labels = MerlRav(d.merl_rav_root, reader).crop_labels()
    idx, codes = labels["crop_index"], labels["visibility"].astype(np.int64)
    names = np.array(reader.names)[idx]
    keep = np.array([n not in excluded for n in names])
    is_val = np.array([n in val_names for n in names])
    return {"train_index": idx[keep & ~is_val], "train_targets": codes[keep & ~is_val],
            "val_index": idx[keep & is_val], "val_targets": codes[keep & is_val], "exclusions": records}


def _log(message: str) -> None:
    print(message, flush=True)


def fit_visibility(cfg: Config, payload: dict, log=_log) -> tuple[dict, dict]:
    """A trans3dhead weights payload -> (the payload with a fitted visibility head, the report).
    data.limit N (tests, probes): only the first N labelled training and validation crops, read one by one
    instead of the decoded cache."""
    from trans3dhead.training.datamodule import cached_crops
    from trans3dhead.training.system import code_commit
    from trans3dhead.weights import build_network, build_payload

    if payload["arch"] != "trans3dhead":
        raise Trans3DHeadError(f"weights of arch '{payload['arch']}': only a trans3dhead network has landmark "
                               "queries for a visibility head")
    v = cfg.visibility
    if v.views < 1:
        raise Trans3DHeadError(f"visibility.views={v.views}: must be at least 1")
    # the network without any head it already has: the head is what this stage writes
    state = {k: t for k, t in payload["state_dict"].items() if not k.startswith("model.visibility_head.")}
    predictor = build_network(build_payload("trans3dhead", dict(payload["model_config"], visibility=False), state))
    reader = AFLWCrops(cfg.data.crops_root)
    split = labelled_split(cfg, reader)
    if cfg.data.limit:
        split["train_index"] = split["train_index"][:cfg.data.limit]
        split["train_targets"] = split["train_targets"][:cfg.data.limit]
        split["val_index"] = split["val_index"][:cfg.data.limit]
        split["val_targets"] = split["val_targets"][:cfg.data.limit]
        train_crops = np.stack([reader.read_crop(int(i)) for i in split["train_index"]])
        val_crops = np.stack([reader.read_crop(int(i)) for i in split["val_index"]])
    else:
        crops = cached_crops(reader, Path(cfg.data.cache_dir))
        train_crops, val_crops = crops[split["train_index"]], crops[split["val_index"]]
    log(f"visibility: {len(split['train_index'])} labelled training crops x {v.views} views, "
        f"{len(split['val_index'])} labelled validation crops")

    queries, poses, targets = [], [], []
    for view in range(v.views):
        x, t = view_crops(train_crops, split["train_targets"], view, cfg)
        out = query_states(predictor, x)
        queries.append(torch.from_numpy(out["queries"]).to(torch.float16))
        poses.append(torch.from_numpy(out["pose_deg"]))
        targets.append(torch.from_numpy(t))
        log(f"  view {view}: query states of {len(x)} crops")
    queries = torch.cat(queries)
    poses, targets = torch.cat(poses), torch.cat(targets)
    val = query_states(predictor, val_crops)
    val_t, val_yaw = split["val_targets"], reader.yaw_deg[split["val_index"]]

    torch.manual_seed(v.seed)
    dim = queries.shape[-1]
    head = VisibilityHead(dim, v.hidden)
    log(f"fitting the visibility head (hidden {v.hidden}{', standardised states' if v.standardise else ''})")
    if v.standardise:
        mean, std = feature_moments(queries)
        fit_classifier(Float32Inputs(head, mean, std), queries, targets, v, log=log)
        fold_standardisation(head, mean, std)
    else:
        fit_classifier(Float32Inputs(head), queries, targets, v, log=log)
    prior = PosePrior()
    log("fitting the pose-only prior (baseline)")
    fit_classifier(prior, poses, targets, v, log=log)
    with torch.no_grad():
        head_probs = torch.softmax(head(torch.from_numpy(val["queries"])), -1).numpy()
        prior_probs = torch.softmax(prior(torch.from_numpy(val["pose_deg"])), -1).numpy()
    reports = {"visibility head": visibility_report(head_probs, val_t, val_yaw),
               "pose-only prior": visibility_report(prior_probs, val_t, val_yaw)}

    config = dict(payload["model_config"], visibility=True, visibility_hidden=v.hidden)
    state = {**state, **{f"model.visibility_head.{k}": t for k, t in head.state_dict().items()}}
    provenance = dict(payload.get("provenance", {}))
    provenance["visibility_fit"] = {
        "config": dataclasses.asdict(v), "code_commit": code_commit(), "train_crops": int(len(split["train_index"])),
        "val_crops": int(len(split["val_index"])), "exclusions": split["exclusions"],
        "targets": "MERL-RAV classes (0 self-occluded, 1 occluded, 2 visible) on the AFLW training crops",
        "val_report": reports["visibility head"]["all"]}
    out = build_payload("trans3dhead", config, state, provenance, payload.get("input"))
    build_network(out)  # loads strictly
    return out, reports


STD_FLOOR = 0.1  # a feature's spread is taken as at least this fraction of the median feature's


def feature_moments(states: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, L, D) states (any float dtype) -> per-feature mean and standard deviation (D,) over all
    N * L rows, in float64 chunks; the deviation floored at STD_FLOOR x the median feature's (the
    large model has a few nearly constant features: unfloored, their folded weights reach 1e5 and
    a 1e-7 change in such a feature would move the head's answer)."""
    total = torch.zeros(states.shape[-1], dtype=torch.float64)
    square = torch.zeros_like(total)
    for i in range(0, len(states), chunk):
        x = states[i:i + chunk].reshape(-1, states.shape[-1]).double()
        total += x.sum(0)
        square += (x * x).sum(0)
    n = states.shape[0] * states.shape[1]
    mean = total / n
    std = (square / n - mean * mean).clamp_min(0).sqrt()
    std = std.clamp_min(max(STD_FLOOR * float(std.median()), 1e-12))
    return mean.float(), std.float()


@torch.no_grad()
def fold_standardisation(head: VisibilityHead, mean: torch.Tensor, std: torch.Tensor) -> None:
    """A head fitted on (x - mean) / std -> the same function of x, in place: the scale and shift
    folded into its first linear map (the shared layer, or each landmark's map where hidden = 0)."""
    if isinstance(head.shared, nn.Identity):
        shift = torch.einsum("d,ldc->lc", mean / std, head.weight)
        head.weight.div_(std[None, :, None])
        head.bias.sub_(shift)
    else:
        linear = head.shared[0]
        linear.bias.sub_(linear.weight @ (mean / std))
        linear.weight.div_(std[None, :])


class Float32Inputs(nn.Module):
    """Runs a module on float16-stored inputs in float32 (the query states are kept in half to
    halve their memory: ~1 GB for four views of the training crops), optionally standardised."""

    def __init__(self, module: nn.Module, mean: torch.Tensor | None = None, std: torch.Tensor | None = None):
        super().__init__()
        self.module, self.mean, self.std = module, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return self.module(x)
