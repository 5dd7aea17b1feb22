"""The run launcher: trainer, checkpoints, logs, resume. ``run_training`` is what
``trans3dhead train`` calls.
"""
from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from trans3dhead.config import Config, dump_config
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.fileio import atomic_path, atomic_write_text
from trans3dhead.training.datamodule import CropsDataModule
from trans3dhead.training.system import Trans3DHeadSystem


class ProgressPrinter(L.Callback):
    """One plain line every N steps (for nohup logs, where a progress bar is unreadable)."""

    def __init__(self, every: int = 50):
        self.every, self.t0 = every, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.is_global_zero and trainer.global_step % self.every == 0:
            m = trainer.callback_metrics
            print(f"epoch {trainer.current_epoch} step {trainer.global_step} "
                  f"loss {float(m.get('train/total', float('nan'))):.3f} "
                  f"landmark {float(m.get('train/landmark', float('nan'))):.3f} "
                  f"elapsed {time.perf_counter() - self.t0:.0f}s", flush=True)

    def on_validation_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
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
    # use_distributed_sampler=False: with several processes, Lightning would wrap the EpochSampler
    # in a DistributedSampler that reshuffles its order by a seed of its own and shards the
    # validation split too; instead each rank draws its own shard of the (seed, epoch) order
    # (datamodule.py) and every rank scores the whole validation split, so validation figures do
    # not depend on the number of processes. A single-process run is untouched by the flag.
    trainer = L.Trainer(max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices,
                        num_nodes=t.num_nodes, strategy=t.strategy, use_distributed_sampler=False,
                        logger=loggers, callbacks=callbacks,
                        plugins=[AtomicCheckpointIO()], log_every_n_steps=config.train.log_every_n_steps,
                        check_val_every_n_epoch=config.train.val_every_n_epochs, deterministic=False,
                        enable_progress_bar=enable_progress_bar, num_sanity_val_steps=0)
    system = Trans3DHeadSystem(config)
    trainer.fit(system, datamodule=CropsDataModule(config), ckpt_path=str(last) if resume else None)
    return trainer
