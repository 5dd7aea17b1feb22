"""Training engine on a tiny config: a run finishes, logs every loss term, writes weights that
load for inference, refuses to overwrite, and a run killed mid-way resumes to the same result."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import DATA_ROOT, REPO_ROOT

from trans3dhead.config import load_config
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.weights import load_network

ROOT = REPO_ROOT
DATA = DATA_ROOT
TINY = ROOT / "configs" / "tiny.yaml"


def _overrides(**extra):
    base = {"data.crops_root": DATA / "aflw_crops", "data.val_split": ROOT / "configs/splits/aflw_crops_val.txt"}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def _train(run_dir, *extra, check=True, wait=True):
    cmd = [sys.executable, "-m", "trans3dhead.cli", "train", "--config", str(TINY), "--run-dir", str(run_dir),
           "--no-progress", *extra]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=600)


def _final_state(run_dir):
    payload = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return payload["weights"]["state_dict"], payload["epoch"]


@pytest.mark.slow
def test_kill_and_resume_reproduces_uninterrupted_run(tmp_path):
    epochs = "train.max_epochs=4"
    full = tmp_path / "full"
    _train(full, *_overrides(), epochs)
    reference, ref_epoch = _final_state(full)

    killed = tmp_path / "killed"
    proc = _train(killed, *_overrides(), epochs, wait=False)
    ckpt = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not [p for p in (killed / "checkpoints").iterdir() if p.name.startswith(".")], "half-written file left"
    _, killed_epoch = _final_state(killed)
    assert killed_epoch < ref_epoch

    _train(killed, *_overrides(), epochs, "--resume")
    resumed, epoch = _final_state(killed)
    assert epoch == ref_epoch
    for name, value in reference.items():
        torch.testing.assert_close(resumed[name], value, atol=1e-5, rtol=1e-4, msg=name)


def test_both_label_paths_train_log_every_term_and_write_loadable_weights(tmp_path):
    """The online teacher and cached labels both train, and the label path really changes: the
    resolved config records which one ran, a data.limit run labels its crops in memory (no cache
    file written where one was asked for), and the two runs, same seed and same crops, end in
    different weights (their targets differ: the teacher on each augmented crop vs labels moved
    with the augmentation, ~1 % NME apart, tests/test_labels.py)."""
    cache = tmp_path / "labels.npz"
    runs = {"online": (tmp_path / "online", {}), "cached": (tmp_path / "cached", {"data.teacher_labels": cache})}
    states = {}
    for kind, (run, extra) in runs.items():
        _train(run, *_overrides(**extra), "train.max_epochs=1")
        header = (run / "logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]
        for term in ("landmark", "depth", "param", "vertex", "cross_branch", "euler", "total"):
            assert f"train/{term}" in header, (kind, term)
        assert "val/nme_teacher_branch" in header
        resolved = load_config(run / "config.yaml")
        assert resolved.data.teacher_labels == (str(cache) if kind == "cached" else None), kind
        net = load_network(str(run / "checkpoints" / "last.ckpt"))
        lm, params = net(torch.rand(1, 3, 120, 120) * 255)
        assert lm.shape == (1, 68, 3) and params.shape == (1, 62)
        states[kind] = _final_state(run)[0]
        again = _train(run, *_overrides(**extra), check=False)
        assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    assert not cache.exists(), "a data.limit run must label in memory, not write the cache"
    assert states["online"].keys() == states["cached"].keys()
    gap = max(float((states["online"][k].float() - states["cached"][k].float()).abs().max()) for k in states["online"])
    assert gap > 1e-4, "online and cached labels trained the same weights: the label path was not used"


def test_config_rejects_unknown_keys_and_bad_files(tmp_path):
    with pytest.raises(Trans3DHeadError, match="unknown key"):
        load_config(TINY, ["model.dimm=3"])
    with pytest.raises(Trans3DHeadError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    assert load_config(TINY, ["train.max_epochs=7"]).train.max_epochs == 7


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_committed_config_loads(path):
    """A config the docs cite must still parse against the current dataclasses (no stale keys)."""
    config = load_config(path)
    assert config.name and config.train.max_epochs >= 1


def test_human_jaw_points_only_on_near_frontal_faces():
    """data.human_jaw_max_yaw_deg: on real AFLW crops with their MERL-RAV labels, a training sample
    whose |yaw| exceeds the limit keeps its human inner points but none of its 17 jaw points; a
    near-frontal one keeps its jaw points. The default (None) keeps every jaw point."""
    import numpy as np

    from trans3dhead.training.datamodule import CropsDataModule

    def human_weights(limit_deg):
        over = _overrides(**{"data.merl_rav_root": DATA / "merl_rav", "data.limit": 400,
                             "data.human_jaw_max_yaw_deg": limit_deg})
        dm = CropsDataModule(load_config(TINY, over))
        dm.setup()
        yaw = np.abs(dm.reader_yaw_deg)
        rows = [(yaw[i], dm.train_set[k]["human_weight"].numpy()) for k, i in enumerate(dm.train_set.indices)
                if int(i) in dm.train_set.human]
        return rows

    rows, everything = human_weights(30.0), human_weights("null")
    assert len(rows) == len(everything) > 60
    turned = [(w, full) for (y, w), (_, full) in zip(rows, everything) if y > 30.0]
    frontal = [(w, full) for (y, w), (_, full) in zip(rows, everything) if y <= 30.0]
    assert len(turned) > 20 and len(frontal) > 20
    for w, full in turned + frontal:
        np.testing.assert_array_equal(w[17:], full[17:])  # inner points untouched
    assert all(w[:17].sum() == 0 for w, _ in turned)
    assert sum(full[:17].sum() > 0 for _, full in turned) > 10  # the default keeps them
    for w, full in frontal:
        np.testing.assert_array_equal(w[:17], full[:17])


def test_the_visibility_head_trains_jointly_on_merl_rav_classes(tmp_path):
    """model.visibility + loss.visibility: the head is trained with the network on MERL-RAV's
    classes (crops without labels left out of the term), logged (train/visibility and the
    validation AUC), and the checkpoint loads as a network that answers visibility."""
    import numpy as np

    run = tmp_path / "vis"
    _train(run, *_overrides(**{"data.merl_rav_root": DATA / "merl_rav", "model.visibility": "true",
                               "loss.visibility": 1.0}), "train.max_epochs=1")
    lines = (run / "logs" / "version_0" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert "train/visibility" in header and "val/visibility_auc_visible" in header
    col = header.index("train/visibility")
    values = [float(r.split(",")[col]) for r in lines[1:] if r.split(",")[col]]
    assert values and all(np.isfinite(values)) and values[0] > 0  # a real cross-entropy, labelled crops present
    out = load_network(str(run / "checkpoints" / "last.ckpt"))(torch.rand(1, 3, 120, 120) * 255)
    assert len(out) == 3 and out[2].shape == (1, 68, 3)
