"""MERL-RAV 68-point labels mapped onto the AFLW crops (trans3dhead/data/merl_rav.py).

The data tests read ../shared/data (CI provides it); the whole mapping runs once per
module (about 3 s).
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import DATA_ROOT

from trans3dhead.data.aflw_crops import AFLWCrops
from trans3dhead.data.merl_rav import MerlRav, aflw21_from_68, fit_scale_shift
from trans3dhead.errors import Trans3DHeadError

DATA = DATA_ROOT
# CI always has ../shared/data beside the clone: a missing data folder must fail, not skip.
def needs_data(test):
    return test


@pytest.fixture(scope="module")
def merl() -> MerlRav:
    return MerlRav(DATA / "merl_rav", AFLWCrops(DATA / "aflw_crops"))


@pytest.fixture(scope="module")
def labels(merl: MerlRav) -> dict:
    return merl.crop_labels()


# --- pure functions ---------------------------------------------------------------------------

def test_fit_scale_shift_recovers_transform_and_rejects_an_outlier():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (2, 12, 2))
    dst = 0.4 * src + np.array([7.0, -3.0])
    dst[0, 3, 0] += 30.0  # a gross outlier in the first set
    dst[1, 5] = np.nan  # an absent point in the second
    fit = fit_scale_shift(src, dst, floor=0.5)
    np.testing.assert_allclose(fit.scale, 0.4, atol=1e-9)
    np.testing.assert_allclose(fit.shift, [[7.0, -3.0], [7.0, -3.0]], atol=1e-7)
    assert not fit.used[0, 3] and fit.residual[0, 3] == pytest.approx(30.0)
    assert np.isnan(fit.residual[1, 5]) and fit.used[1].sum() == 11


def test_aflw21_from_68_takes_means_and_marks_absent_points():
    pts = np.arange(136, dtype=np.float64).reshape(68, 2)
    out = aflw21_from_68(pts)
    np.testing.assert_allclose(out[6], pts[36])  # left eye outer <- 36
    np.testing.assert_allclose(out[7], pts[[37, 38, 40, 41]].mean(0))  # left eye centre
    np.testing.assert_allclose(out[14], pts[30])  # nose tip
    assert np.isnan(out[[12, 16]]).all()  # ear lobes: no counterpart
    pts[38] = np.nan
    assert np.isnan(aflw21_from_68(pts)[7]).all()


# --- errors -----------------------------------------------------------------------------------

def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(Trans3DHeadError, match="MERL-RAV data root: folder not found"):
        MerlRav(tmp_path / "nope", tmp_path)


def test_folder_without_labels_is_a_clear_error(tmp_path):
    with pytest.raises(Trans3DHeadError, match="not a MERL-RAV folder"):
        MerlRav(tmp_path, tmp_path)


@needs_data
def test_wrong_file_is_a_clear_error(tmp_path):
    shutil.copy(DATA / "aflw_crops" / "aflw_crops_meta.npz", tmp_path / "merl_rav_labels.npz")
    with pytest.raises(Trans3DHeadError, match="lacks keys"):
        MerlRav(tmp_path, DATA / "aflw_crops")


# --- the real data ----------------------------------------------------------------------------

@needs_data
def test_counts(merl: MerlRav, labels: dict):
    t = merl.match_table()
    assert len(merl) == 17614 and t.exact.sum() == 10359
    assert t.matched.sum() == 13336  # every exact name + the best face of each of 2,977 photos
    assert 12000 <= len(labels["crop_index"]) <= 12600  # measured 12,302
    assert 9900 <= (t.kept & t.exact).sum() <= 10359  # measured 10,120


@needs_data
def test_output_layout(merl: MerlRav, labels: dict):
    m = len(labels["crop_index"])
    ci = labels["crop_index"]
    assert labels["pts68"].shape == (m, 68, 2) and labels["pts68"].dtype == np.float32
    assert labels["visibility"].shape == (m, 68) and labels["visibility"].dtype == np.int8
    assert labels["fit_residual_px"].shape == (m,) and labels["split"].shape == (m,)
    assert (np.diff(ci) > 0).all() and ci.min() >= 0 and ci.max() < len(merl.crops)  # sorted, unique
    # NaN exactly where MERL-RAV marks a point self-occluded.
    np.testing.assert_array_equal(np.isnan(labels["pts68"][..., 0]), labels["visibility"] == 0)
    assert set(np.unique(labels["split"])) <= {f"{g}/{s}" for g in ("frontal", "left", "right", "lefthalf",
                                                                   "righthalf") for s in ("trainset", "testset")}
    # The crop of a kept face is its photo's crop.
    for k in (0, m // 2, m - 1):
        assert merl.crops.names[ci[k]] == str(labels["name"][k]).split("_")[0]


@needs_data
def test_residuals_measured_bounds(labels: dict):
    r = labels["fit_residual_px"]
    assert r.max() <= 4.0
    assert np.median(r) < 1.8  # measured 1.64 crop px
    assert np.percentile(r, 90) < 2.8  # measured 2.52


@needs_data
def test_left_right_sense_and_crop_frame(merl: MerlRav, labels: dict):
    """68-point 36 (image-left eye outer corner) lands on AFLW point 6, not 11; 48 on 17, not 19."""
    pts21 = np.stack([merl.crops.pts21_crop(i) for i in labels["crop_index"]])
    pts68 = labels["pts68"].astype(np.float64)
    for p68, same, other in ((36, 6, 11), (45, 11, 6), (48, 17, 19), (30, 14, 14), (8, 20, 20)):
        d_same = np.linalg.norm(pts68[:, p68] - pts21[:, same], axis=-1)
        ok = np.isfinite(d_same)
        assert ok.sum() > 3000
        # Same crop frame as AFLWCrops.pts21_crop; measured 1.5-1.7 px (eyes, mouth), 2.2 (chin),
        # 2.8 (nose tip: AFLW's sits lower than 68-point 30).
        assert np.median(d_same[ok]) < 3.5, (p68, same)
        if other != same:
            d_other = np.linalg.norm(pts68[:, p68] - pts21[:, other], axis=-1)
            both = ok & np.isfinite(d_other)
            assert (d_same[both] < d_other[both]).mean() > 0.98, (p68, same, other)
    # Frontal faces: image-left eye (36) has the smaller x than the image-right eye (45).
    frontal = np.char.startswith(labels["split"].astype(str), "frontal")
    both = frontal & np.isfinite(pts68[:, 36, 0]) & np.isfinite(pts68[:, 45, 0])
    assert (pts68[both, 36, 0] < pts68[both, 45, 0]).mean() > 0.99
