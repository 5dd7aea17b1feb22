"""Shared fixtures: the shared data folder beside the repository, the AFLW2000-3D reader, the face
model and the reference network, each built once per session.

The data lives at ``../shared/data`` from the repository root (CI clones the repository beside
``shared/``). A missing folder is a failure, not a skip: the tests that pin conventions on real
data are the point of the suite.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

# The one definition of where things are; test modules import these names from here.
REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
AFLW2000_ROOT = DATA_ROOT / "aflw2000_3d"
AFLW_CROPS_ROOT = DATA_ROOT / "aflw_crops"
FACE_MODEL_ROOT = DATA_ROOT / "face_model"


def pytest_configure(config):
    # The test machine shares its cores with training jobs; one thread keeps runs light and
    # makes timings comparable.
    torch.set_num_threads(1)


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"shared data not found at {path}; clone the repository beside ../shared "
                    "(see /work/shared/data/README.md)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def aflw2000_root() -> Path:
    return _require(AFLW2000_ROOT)


@pytest.fixture(scope="session")
def aflw_crops_root() -> Path:
    return _require(AFLW_CROPS_ROOT)


@pytest.fixture(scope="session")
def face_model_root() -> Path:
    return _require(FACE_MODEL_ROOT)


@pytest.fixture(scope="session")
def aflw2000(aflw2000_root):
    """The AFLW2000-3D reader (meta only; Pose_Para is read on first use of .pose_deg)."""
    from trans3dhead.data.aflw2000_3d import AFLW2000_3D
    return AFLW2000_3D(aflw2000_root)


@pytest.fixture(scope="session")
def aflw2000_pose_deg(aflw2000) -> np.ndarray:
    """(2000, 3) yaw, pitch, roll in degrees from every image's Pose_Para (about 0.5 s to read)."""
    return aflw2000.pose_deg


@pytest.fixture(scope="session")
def aflw2000_crop_boxes(aflw2000) -> np.ndarray:
    """(2000, 4) package-frame boxes of the provided crops (AFLW2000_3D.crop_box_provided)."""
    return aflw2000.crop_box_provided


@pytest.fixture(scope="session")
def bfm_arrays() -> dict:
    from trans3dhead.face_model.bfm import load_bfm_arrays
    return load_bfm_arrays()


@pytest.fixture(scope="session")
def face_model(bfm_arrays):
    """FaceModel with the dense mesh, float32, CPU."""
    from trans3dhead.face_model.bfm import FaceModel
    return FaceModel(dense=True, arrays=bfm_arrays)


@pytest.fixture(scope="session")
def reference_net():
    """The packaged 3DDFA_V2 MobileNet-0.5 (``3ddfa-mb05``), eval mode."""
    from trans3dhead.weights import load_network
    return load_network("3ddfa-mb05")


@pytest.fixture
def run_cli(capsys):
    """Run ``trans3dhead <argv>`` in this process; returns (exit code, stdout, stderr).

    An exception that escapes ``cli.main`` (a traceback for the user) fails the test by itself.
    """
    from trans3dhead.cli import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
