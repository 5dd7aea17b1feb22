"""Teacher labels: flip averaging is mirror-consistent, and `trans3dhead label` writes its cache
with provenance."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from trans3dhead.data.io import read_image_bgr
from trans3dhead.data.transforms import flip_points
from trans3dhead.labels import Teacher
from trans3dhead.weights import load_network

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _crops(n=6):
    paths = sorted((DATA / "aflw_crops" / "images").glob("*.jpg"))[:n]
    return torch.from_numpy(np.stack([read_image_bgr(p) for p in paths])).permute(0, 3, 1, 2).float()


def test_flip_averaged_labels_are_mirror_equivariant():
    """Labels of a mirrored crop are the mirrored labels: exactly so with flip averaging."""
    teacher = Teacher(load_network("3ddfa-mb05"), flip_average=True)
    x = _crops()
    a, b = teacher(x), teacher(x.flip(-1))
    mirrored = flip_points(b["lm"].numpy(), 120)
    np.testing.assert_allclose(mirrored, a["lm"].numpy(), atol=1e-3)
    np.testing.assert_allclose(b["pose_deg"].numpy() * [-1, 1, -1], a["pose_deg"].numpy(), atol=1e-3)
    plain = Teacher(load_network("3ddfa-mb05"), flip_average=False)
    gap = np.abs(flip_points(plain(x.flip(-1))["lm"].numpy(), 120) - plain(x)["lm"].numpy()).mean()
    assert gap > 0.2, "without flip averaging the teacher is not mirror-consistent (measured ~1 px)"


def test_label_command_writes_cache_with_provenance(tmp_path):
    out = tmp_path / "labels.npz"
    subprocess.run([sys.executable, "-m", "trans3dhead.cli", "label", "--data-root", str(DATA / "aflw_crops"),
                    "-o", str(out), "--limit", "40"], check=True, capture_output=True, timeout=300)
    z = np.load(out)
    assert z["landmarks_crop"].shape == (40, 68, 3) and z["params"].shape == (40, 62)
    assert z["pose_deg"].shape == (40, 3) and str(z["teacher"]) == "3ddfa-mb05" and bool(z["flip_average"])
    # the cache holds exactly what the flip-averaged teacher gives on those crops
    from trans3dhead.labels import label_crops
    direct = label_crops(Teacher(load_network("3ddfa-mb05")), _crops(40).permute(0, 2, 3, 1).numpy().astype(np.uint8))
    np.testing.assert_allclose(z["landmarks_crop"], direct["lm"], atol=1e-3)
    np.testing.assert_allclose(z["pose_deg"], direct["pose_deg"], atol=1e-3)
