"""The Lightning system: model, multi-information loss, teacher and optimiser; logs every loss
term and the validation-split scores (evaluation/validation.py). No layers are defined here.

Labels come from the teacher, either cached once per crop (``data.teacher_labels``; see
training/labels.py) or run online on each geometrically augmented crop, optionally plus MERL-RAV
human landmarks. The student sees the crop after photometric augmentation and occluders, which
the teacher never sees.
"""
from __future__ import annotations

import math
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch

from trans3dhead.config import Config, config_to_dict
from trans3dhead.evaluation.metrics import roc_auc
from trans3dhead.evaluation.validation import validation_scores
from trans3dhead.face_model.bfm import NUM_LANDMARKS
from trans3dhead.face_model.landmarks68 import VISIBILITY_CLASSES
from trans3dhead.face_model.pose import pose_deg_from_params
from trans3dhead.model.trans3dhead import build_model
from trans3dhead.training.labels import Teacher
from trans3dhead.training.losses import MultiInformationLoss
from trans3dhead.weights import INPUT_SPEC, build_payload, load_network, read_weights, resolve_weights

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
        target["human_vis"] = batch["human_vis"]
        lm, params_norm, logits = self._forward(batch["student"].float())
        total, terms = self.criterion(lm, params_norm, target, logits)
        weights = self.config.loss
        for name, value in terms.items():
            self.log(f"train/{name}", value, on_step=True, prog_bar=name == "landmark")
            self.log(f"train/{name}_scaled", getattr(weights, name) * value, on_step=True)
        self.log("train/total", total, on_step=True, prog_bar=True)
        if self._t0 is not None:
            self.log("train/crops_per_s", len(batch["student"]) / (time.perf_counter() - self._t0), prog_bar=True)
        self._t0 = time.perf_counter()
        return total

    def _forward(self, crops: torch.Tensor):
        """lm (K, B, 68, 3), params_norm (K, B, 62) and the visibility logits (B, 68, 3) or None."""
        lm, params_norm, queries = self.model.forward_queries(crops)
        head = self.model.visibility_head
        return lm, params_norm, None if head is None else head(queries[:, :NUM_LANDMARKS])

    def validation_step(self, batch, batch_idx):
        target = self._targets(batch)
        lm, params_norm, logits = self._forward(batch["clean"].float())
        params = self.model.face_model.denormalize(params_norm[-1])
        lm_3dmm = self.model.face_model.landmarks_crop(params, self.config.model.crop_size)
        arrays = {"lm": lm[-1], "lm_3dmm": lm_3dmm, "teacher": target["lm"], "teacher_pose": target["pose_deg"],
                  "pose": pose_deg_from_params(params), "human": batch["human_lm"], "human_w": batch["human_weight"],
                  "human_vis": batch["human_vis"]}
        if logits is not None:
            arrays["vis_visible"] = torch.softmax(logits, -1)[..., -1]
        self._val.append({k: v.detach().cpu().numpy() for k, v in arrays.items()})

    def on_validation_epoch_end(self):
        v = {k: np.concatenate([b[k] for b in self._val]) for k in self._val[0]}
        self._val = []
        scores = validation_scores({"branch": v["lm"], "3dmm": v["lm_3dmm"]}, v["teacher"], v["human"], v["human_w"])
        for name, value in scores.items():
            self.log(f"val/{name}", value, prog_bar=name == "nme_human_inner_branch")
        self.log("val/pose_mae_teacher", float(np.abs(v["pose"] - v["teacher_pose"]).mean()))
        if "vis_visible" in v and (v["human_vis"] >= 0).any():
            labelled = v["human_vis"] >= 0
            visible = VISIBILITY_CLASSES.index("visible")  # MERL-RAV's code
            self.log("val/visibility_auc_visible", roc_auc(v["vis_visible"][labelled], v["human_vis"][labelled] == visible))

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
    datamodule = getattr(system.trainer, "datamodule", None) if system._trainer is not None else None
    provenance = {"config": config_to_dict(system.config), "epoch": system.current_epoch,
                  "global_step": system.global_step, "code_commit": code_commit(),
                  "data": getattr(datamodule, "summary", None)}
    state = {"model." + k: v for k, v in system.model.state_dict().items()}  # as Trans3DHeadPredictor holds it
    return build_payload("trans3dhead", asdict(system.config.model), state, provenance,
                         {**INPUT_SPEC, "crop_size": system.config.model.crop_size})


def code_commit() -> str | None:
    """The git commit of the code that trained (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() + ("+dirty" if dirty else "")) if out.returncode == 0 else None
