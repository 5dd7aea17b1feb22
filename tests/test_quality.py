"""Face quality (FaceResult.quality, HeadAligner(min_quality=...), predict --min-quality) on real
images: scikit-image's non-face photos (the cat `chelsea`, coffee, a rocket, cells, gravel, ...)
and textures made here give no face at the default threshold; faces of the shared data (the
bundled photo, AFLW validation crops placed in larger canvases, frames of the shared clip) are
all still found; the option works from Python, the CLI and the tracker.

The threshold and the figures behind these tests: scripts/measure_face_quality.py, docs/results.md
("Face-quality score")."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data  # the test extra installs scikit-image; a missing package is a failure, not a skip
import skimage.io
from conftest import AFLW_CROPS_ROOT, DATA_ROOT, REPO_ROOT
from test_inference_data import MODEL, photo_bgr, photo_path

from trans3dhead import HeadAligner
from trans3dhead.cli import main
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.fileio import to_bgr_uint8
from trans3dhead.inference.quality import (AGREEMENT_HALF, DEFAULT_MIN_QUALITY, RECOMMENDED_MIN_QUALITY, SHARPNESS_HALF, crop_sharpness,
                                           quality_from_cues)
from trans3dhead.training.face_score import detector_views

# scikit-image data images without a face (astronaut and camera show people)
NON_FACE_IMAGES = ("chelsea", "coffee", "rocket", "brick", "grass", "gravel", "cell", "color", "coins", "moon",
                   "clock_motion", "motorcycle_left", "motorcycle_right", "horse", "page", "text", "hubble_deep_field")


def _skimage_bgr(name: str) -> np.ndarray:
    root = Path(skimage.data.__file__).parent
    path = next(root.glob(f"{name}.*"))
    return to_bgr_uint8(skimage.io.imread(path), "rgb", path.name)  # grey and alpha handled as for any input


def _textures() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:360, :360]
    grey = lambda a: np.repeat(np.clip(a, 0, 255).astype(np.uint8)[..., None], 3, -1)  # noqa: E731
    smooth = cv2.GaussianBlur(rng.normal(128, 60, (360, 360)), (0, 0), 6)
    return {"blank_black": np.zeros((360, 360, 3), np.uint8), "blank_grey": np.full((360, 360, 3), 128, np.uint8),
            "blank_white": np.full((360, 360, 3), 255, np.uint8),
            "noise": rng.integers(0, 256, (360, 360, 3), dtype=np.uint8),
            "smooth_noise": grey((smooth - smooth.mean()) / smooth.std() * 50 + 128),
            "stripes": grey((np.sin(xx / 6.0) > 0) * 255), "checker": grey(((xx // 30 + yy // 30) % 2) * 255),
            "rings": grey(127 + 127 * np.sin(np.hypot(xx - 180, yy - 180) / 8))}


def _val_names(n: int) -> list[str]:
    lines = (REPO_ROOT / "configs/splits/aflw_crops_val.txt").read_text().splitlines()
    with open(AFLW_CROPS_ROOT / "excluded_near_duplicates_of_aflw2000_3d.csv") as f:
        excluded = {row["crop_name"] for row in csv.DictReader(f)}
    names = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#") and ln.strip() not in excluded]
    return names[:n]


def _in_canvas(crop: np.ndarray) -> np.ndarray:
    """A 120x120 crop scaled to 240 px with 80 px of its edge pixels replicated around it."""
    big = cv2.resize(crop, (240, 240), interpolation=cv2.INTER_LINEAR)
    return cv2.copyMakeBorder(big, 80, 80, 80, 80, cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def keep_all():
    """The default model and detector with no quality threshold: what the detector reports."""
    return HeadAligner(model=MODEL, threads=1, min_quality=None)


@pytest.fixture(scope="module")
def aligner():
    """With the recommended threshold (the default keeps every face)."""
    return HeadAligner(model=MODEL, threads=1, min_quality=RECOMMENDED_MIN_QUALITY)


def test_quality_rule():
    assert quality_from_cues(0.0, 1e9) == pytest.approx(1.0)
    assert quality_from_cues(AGREEMENT_HALF, 1e9) == pytest.approx(0.5)
    assert quality_from_cues(0.0, SHARPNESS_HALF) == pytest.approx(0.5)
    assert quality_from_cues(0.1, 0.0) == 0.0
    assert quality_from_cues(0.2, 100.0) > quality_from_cues(0.3, 100.0) > quality_from_cues(0.3, 20.0)
    flat = np.full((120, 120, 3), 90, np.uint8)
    assert crop_sharpness(flat) == 0.0
    assert crop_sharpness(cv2.imread(str(photo_path()))[56:176, 177:297]) > 10 * SHARPNESS_HALF


@pytest.mark.slow
def test_non_face_images_give_no_face(keep_all, aligner):
    images = {name: _skimage_bgr(name) for name in NON_FACE_IMAGES} | _textures()
    reported = {}
    for name, img in images.items():
        for k, v in enumerate(detector_views(img)):
            for f in keep_all(v):
                assert 0.0 <= f.quality <= 1.0
                reported[f"{name}[{k}]"] = (round(f.score, 3), round(f.quality, 3))
    # the detector alone reports something here (measured: the cell image mirrored at 2x, 0.945) ...
    assert reported, "the detector found nothing on the non-face images: this test no longer tests the quality"
    # ... and the quality rejects all of it
    assert all(q < RECOMMENDED_MIN_QUALITY for _, q in reported.values()), reported
    for name in ("chelsea", "cell"):  # the cat, and the image the detector is fooled by, at default settings
        assert all(aligner(v) == [] for v in detector_views(images[name]))


@pytest.mark.slow
def test_heavily_blurred_faces_are_rejected(keep_all):
    """Validation faces blurred with sigma 6 px of the 120 crop (12 px on the 240 px face)."""
    found = kept = 0
    for name in _val_names(40):
        canvas = cv2.GaussianBlur(_in_canvas(cv2.imread(str(AFLW_CROPS_ROOT / "images" / f"{name}.jpg"))), (0, 0), 12)
        faces = keep_all(canvas)
        found += len(faces)
        kept += sum(f.quality >= RECOMMENDED_MIN_QUALITY for f in faces)
    assert found >= 15  # the detector still reports many of these blurred faces (measured: 181 of 300) ...
    assert kept <= 0.1 * found, (kept, found)  # ... the quality drops nearly all (measured: 1.1 % kept)


# Validation faces (of the first 300 of the split, as measured) whose quality is below the
# recommended threshold: a head tilted far back (docs/results.md, "Face-quality score"). Every
# other face the detector finds is kept.
KNOWN_LOSSES = {"image09214"}  # attempt 9 with its face score, at 0.5 (quality 0.071); attempt 8 at 0.4: also image17468


@pytest.mark.slow
def test_every_validation_face_is_still_found(keep_all):
    lost, found = set(), 0
    for name in _val_names(300):
        canvas = _in_canvas(cv2.imread(str(AFLW_CROPS_ROOT / "images" / f"{name}.jpg")))
        faces = keep_all(canvas)
        if not faces:
            continue
        found += 1
        best = max(faces, key=lambda f: f.score)
        assert 0.0 <= best.quality <= 1.0
        if best.quality < RECOMMENDED_MIN_QUALITY:
            lost.add(name)
    assert found >= 290
    assert lost == KNOWN_LOSSES, lost


@pytest.mark.slow
def test_every_face_of_the_clip_is_still_found(keep_all):
    cap = cv2.VideoCapture(str(DATA_ROOT / "video" / "side_profile.mp4"))
    checked = 0
    for i in range(1001):  # frames 0, 20, ..., 1000: front view, the turn to profile, the tilts at profile
        if i % 20:
            assert cap.grab()
            continue
        ok, frame = cap.read()
        assert ok
        for f in keep_all(frame):
            checked += 1
            assert f.quality >= RECOMMENDED_MIN_QUALITY, (i, f)
    cap.release()
    assert checked >= 30  # the detector finds the face on 38 of these 51 frames (measured), not at profile tilts


def test_bundled_photo_quality_and_the_python_option(aligner):
    (face,) = aligner(photo_bgr())
    assert RECOMMENDED_MIN_QUALITY < face.quality <= 1.0
    assert HeadAligner(model=MODEL, threads=1, min_quality=0.0)(photo_bgr())[0].quality == pytest.approx(face.quality)
    assert HeadAligner(model=MODEL, threads=1, min_quality=min(1.0, face.quality + 0.01))(photo_bgr()) == []
    with pytest.raises(Trans3DHeadError, match="min_quality"):
        HeadAligner(model=MODEL, min_quality=1.5)


def test_models_without_a_landmark_branch_have_no_quality():
    (face,) = HeadAligner(model="3ddfa-mb05", threads=1, min_quality=1.0)(photo_bgr())  # kept: nothing to judge
    assert face.quality is None


def test_cli_min_quality(tmp_path, capsys):
    def predict(*extra) -> dict:
        out = tmp_path / "_".join(extra or ("default",))
        assert main(["predict", str(photo_path()), "-o", str(out), "--model", MODEL, "--threads", "1", "--quiet",
                     *extra]) == 0
        return json.loads((out / "example_astronaut.json").read_text())

    doc = predict()
    (face,) = doc["faces"]
    assert DEFAULT_MIN_QUALITY is None and doc["min_quality"] is None  # off by default: every face kept
    assert RECOMMENDED_MIN_QUALITY < face["quality"] <= 1.0
    assert predict("--min-quality", str(RECOMMENDED_MIN_QUALITY))["faces"][0]["quality"] == face["quality"]
    assert face["quality"] < 1.0 and predict("--min-quality", "1")["faces"] == []
    assert predict("--model", "3ddfa-mb05")["faces"][0]["quality"] is None  # the last --model counts
    with pytest.raises(SystemExit):
        main(["predict", str(photo_path()), "-o", str(tmp_path), "--min-quality", "1.5"])
    assert "must lie in [0, 1]" in capsys.readouterr().err


def test_tracker_starts_no_track_on_a_non_face(aligner):
    fooled = detector_views(_skimage_bgr("cell"))  # the detector reports a face on one of these
    tracker = aligner.tracker(detect_every=1)
    assert all(tracker(v) == [] for v in fooled)
    tracker = aligner.tracker()
    faces = [tracker(photo_bgr()) for _ in range(3)]
    assert all(len(f) == 1 and f[0].quality >= RECOMMENDED_MIN_QUALITY for f in faces)
