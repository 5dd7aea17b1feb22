"""MERL-RAV human 68-point labels mapped onto the AFLW training crops (data/aflw_crops.py).

What it holds: ``merl_rav_labels.npz`` (abhi1kumar/MERL-RAV_dataset, "LUVLi Face Alignment",
CVPR 2020; no licence stated, research use) has 17,614 AFLW faces, each with 68 points in the
300-W / Multi-PIE scheme (0-based: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67)
in the ORIGINAL AFLW photo, a visibility per point (2 visible, 1 externally occluded with an
estimated position, 0 self-occluded with no position = NaN) and the dataset's pose group and split.
On profiles the jaw follows the visible contour, unlike AFLW2000-3D's 3D-model contour.

Output frame: the package crop frame of the 120x120 AFLW crop (face_model/frames.py: x right,
y down, origin at the top-left corner of the top-left pixel), the same frame as
``AFLWCrops.pts21_crop``.

How the mapping is made. The original photo and the crop's 450x450 frame differ by a per-face
isotropic scale and shift, fitted here from the AFLW 21 points of the crop (``AFLW21_TO_68``: AFLW
point k <-> the mean of these 68-point indices; the two ear lobes have no counterpart and are left
out). AFLW's "left" is the image-left side, so AFLW's left-eye outer corner is 68-point 36 and its
left mouth corner 48: on the exact-name faces, fitted without the scheme offsets below, the mirrored
correspondence leaves a median residual of 46.7 px in the 450 frame against 4.7 px for this one, and
drawings of the mapped labels on crops agree (the script's --draw).
A free rotation would be 1.0 deg (median; 99th percentile 5.8) and a free x/y scale ratio 0.993, so
neither is fitted. The schemes place some points differently (AFLW's nose tip sits lower than
68-point 30, its nose wings outside and above 31/35, its brow ends further out); those median
offsets, in units of the label's box size sqrt(w*h), are estimated from the exact-name matches and
added to the 68-point side before fitting, which cuts the median residual from 2.1 to 1.6 crop px
and sharpens the matching. Each fit is least squares on scale and shift, then twice drops the
points whose residual exceeds max(2.5 x median, 1 crop px) and refits; residuals are then taken at
every corresponding point. A constant offset in the MERL-RAV coordinates (0- or 1-based pixel
centres) is absorbed by the fitted shift, so their pixel convention does not matter: the mapped
points inherit the frame of the AFLW 21 points as AFLWCrops reads them.

Matching. 10,359 MERL-RAV names equal a crop name (one labelled face in that photo). The other
7,255 carry a suffix ``_k`` (several faces in one photo: 2,977 photos, 347 of them with one face
left in MERL-RAV); the crop shows one of them, or a face MERL-RAV did not label. Every face is fitted
to its photo's crop and each photo's candidates are ranked by their mean residual (crop px). A face
is kept when

* at least ``MIN_FIT_POINTS`` (6) points correspond, and the median residual (``fit_residual_px``)
  is at most ``MAX_RESIDUAL_PX`` (4.0 crop px; exact-name matches: median 1.62, 99th pct 4.45);
* for a suffixed face, also: it is the best of its photo and the runner-up's mean residual is at
  least ``AMBIGUITY_RATIO`` (1.5) times its own, or, alone in its photo (the crop may show an
  unlabelled face), its median residual is at most ``MAX_RESIDUAL_LONE_PX`` (2.0 crop px).

Pairing each exact-name crop with its own face and three random faces of the same MERL-RAV pose
group, the ratio rule keeps 84% and picks a wrong face for 0.05% of those; a lone wrong face passes
the 2.0 px bound 1.4% of the time (the right one 73%).

Measured (``python scripts/measure_merl_rav_mapping.py``, ../shared/data): 13,336 faces matched
to a crop (10,359 exact names + the best of each of the 2,977 suffixed photos); 12,302 kept
(10,120 exact, 2,050 from multi-face photos, 132 lone suffixed); median residual of the kept fits
1.64 crop px, 90th percentile 2.52, 99th 3.48. Some MERL-RAV labels carry gross point errors the
fit tolerates (e.g. image58310, points 53/54/64 far from the mouth); they are not removed here.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trans3dhead.data.aflw_crops import CROP_SIZE, AFLWCrops
from trans3dhead.fileio import load_dataset_npz
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.face_model.frames import image_to_crop

# AFLW 21-point order -> 68-point indices averaged (None: no counterpart).
AFLW21_TO_68: tuple[tuple[int, ...] | None, ...] = (
    (17,), (19,), (21,),            # left brow: outer, centre, inner (image-left)
    (22,), (24,), (26,),            # right brow: inner, centre, outer
    (36,), (37, 38, 40, 41), (39,),  # left eye: outer, centre, inner
    (42,), (43, 44, 46, 47), (45,),  # right eye: inner, centre, outer
    None,                           # left ear lobe
    (31,), (30,), (35,),            # nose: left, tip, right
    None,                           # right ear lobe
    (48,), (62, 66), (54,),         # mouth: left, centre, right
    (8,),                           # chin
)

MIN_FIT_POINTS = 6
MAX_RESIDUAL_PX = 4.0
MAX_RESIDUAL_LONE_PX = 2.0
AMBIGUITY_RATIO = 1.5
REJECT_FACTOR = 2.5
REJECT_FLOOR_PX = 1.0
REJECT_ROUNDS = 2

_LABELS_FILE = "merl_rav_labels.npz"
_KEYS = ("names", "pts68", "visibility", "split")


@dataclass
class ScaleShiftFit:
    """Batched fit dst ~ scale * src + shift. residual (M, P) NaN where a point is absent in either."""

    scale: np.ndarray  # (M,)
    shift: np.ndarray  # (M, 2)
    residual: np.ndarray  # (M, P)
    used: np.ndarray  # (M, P) bool: points kept by the last rejection round

    def apply(self, pts: np.ndarray) -> np.ndarray:
        """(M, K, 2) source points -> destination frame."""
        return self.scale[:, None, None] * pts + self.shift[:, None, :]


def aflw21_from_68(pts68: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (..., 21, 2) the AFLW 21 points implied by 68 points; NaN where undefined."""
    pts68 = np.asarray(pts68, dtype=np.float64)
    out = np.full(pts68.shape[:-2] + (21, 2), np.nan)
    for k, idx in enumerate(AFLW21_TO_68):
        if idx is not None:
            out[..., k, :] = pts68[..., list(idx), :].mean(-2)  # NaN if any is absent
    return out


def fit_scale_shift(src: np.ndarray, dst: np.ndarray, floor: np.ndarray | float = 0.0,
                    factor: float = REJECT_FACTOR, rounds: int = REJECT_ROUNDS) -> ScaleShiftFit:
    """Robust least-squares isotropic scale + shift, batched over M point sets.

    src, dst: (M, P, 2) with NaN for absent points. After each fit, points with a residual above
    max(factor * median residual, floor) (floor: scalar or (M,)) are dropped and the fit repeated.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    present = ~(np.isnan(src).any(-1) | np.isnan(dst).any(-1))
    s, t = np.nan_to_num(src), np.nan_to_num(dst)
    floor = np.broadcast_to(np.asarray(floor, dtype=np.float64), present.shape[:1])
    used = present
    for round_ in range(rounds + 1):
        w = used[..., None].astype(np.float64)
        n = np.maximum(used.sum(1), 1)[:, None]
        ms, mt = (s * w).sum(1) / n, (t * w).sum(1) / n
        s0, t0 = (s - ms[:, None]) * w, (t - mt[:, None]) * w
        scale = (s0 * t0).sum((1, 2)) / np.maximum((s0 ** 2).sum((1, 2)), 1e-12)
        shift = mt - scale[:, None] * ms
        residual = np.linalg.norm(scale[:, None, None] * src + shift[:, None] - dst, axis=-1)
        if round_ == rounds:
            break
        r = np.where(used, residual, np.nan)
        with np.errstate(invalid="ignore"):
            med = np.nanmedian(np.where(used.any(1)[:, None], r, 0.0), 1)
        used = present & (residual <= np.maximum(factor * med, floor)[:, None])
    return ScaleShiftFit(scale, shift, residual, used)


@dataclass
class MatchTable:
    """Per MERL-RAV face (N,): its photo's crop, its fit to that crop and the decision."""

    crop_index: np.ndarray  # (N,) int: the crop of the face's photo
    exact: np.ndarray  # (N,) bool: the name equals the crop name (no suffix)
    fit: ScaleShiftFit  # original photo -> 450 frame
    residual_px: np.ndarray  # (N, 21) residuals in crop px at the corresponding points, else NaN
    median_px: np.ndarray  # (N,) median of residual_px (the reported fit residual)
    mean_px: np.ndarray  # (N,) mean of residual_px (ranks the faces of one photo)
    n_points: np.ndarray  # (N,) corresponding points (present on both sides)
    matched: np.ndarray  # (N,) bool: the face chosen for its crop (exact, or best of its photo)
    kept: np.ndarray  # (N,) bool: matched and passing the thresholds


class MerlRav:
    """Reader for ``<root>`` = .../merl_rav with merl_rav_labels.npz, mapped onto ``crops``.

    crops: an AFLWCrops instance or its root folder (.../aflw_crops).
    """

    def __init__(self, root, crops: AFLWCrops | str | Path):
        self.root, z = load_dataset_npz(root, _LABELS_FILE, _KEYS, "MERL-RAV", hint="pass .../shared/data/merl_rav")
        path = self.root / _LABELS_FILE
        n = len(z["names"])
        if z["pts68"].shape != (n, 68, 2) or z["visibility"].shape != (n, 68) or z["split"].shape != (n,):
            raise Trans3DHeadError(f"{path}: expected pts68 (N, 68, 2), visibility (N, 68) and split (N,), "
                                   f"got {z['pts68'].shape}, {z['visibility'].shape}, {z['split'].shape}")
        self.names = [str(s) for s in z["names"]]
        self.pts68_orig = z["pts68"].astype(np.float64)  # original AFLW photo frame, NaN = no position
        self.visibility = z["visibility"].astype(np.int8)
        self.split = np.asarray(z["split"]).astype(str)
        self.crops = crops if isinstance(crops, AFLWCrops) else AFLWCrops(crops)
        self._label_size = _box_size(self.pts68_orig)
        self._table: MatchTable | None = None
        self._labels: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.names)

    def _photo_crop_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(N,) crop index of each face's photo and (N,) whether the name matched exactly."""
        by_name = {name: i for i, name in enumerate(self.crops.names)}
        index, exact = np.empty(len(self), np.int64), np.empty(len(self), bool)
        for j, name in enumerate(self.names):
            base = name.split("_", 1)[0]
            if base not in by_name:
                raise Trans3DHeadError(f"MERL-RAV face {name}: no crop {base} in {self.crops.root}; "
                                       "are these the matching aflw_crops?")
            index[j], exact[j] = by_name[base], base == name
        return index, exact

    def _fit(self, crop_index: np.ndarray,
             offsets: np.ndarray) -> tuple[ScaleShiftFit, np.ndarray, np.ndarray]:
        """Fit every face to its crop's AFLW 21 points (450 frame); also returns src and dst."""
        src = aflw21_from_68(self.pts68_orig) + offsets[None] * self._label_size[:, None, None]
        dst = self.crops.pts21_img[crop_index].copy()
        dst[(dst < 0).any(-1)] = np.nan
        floor = REJECT_FLOOR_PX * crop_pixel_size(self.crops.roi_box[crop_index])
        return fit_scale_shift(src, dst, floor=floor), src, dst

    def _scheme_offsets(self, crop_index: np.ndarray, exact: np.ndarray) -> np.ndarray:
        """(21, 2) median AFLW-minus-68 offsets of the exact-name matches, in label-box units."""
        offsets = np.zeros((21, 2))
        for _ in range(2):  # the second pass refines with the first pass's offsets applied
            fit, src, dst = self._fit(crop_index, offsets)
            with np.errstate(invalid="ignore", divide="ignore"), _quiet_nan_warnings():
                rel = (dst - fit.apply(src)) / (fit.scale * self._label_size)[:, None, None]
                rel[~fit.used] = np.nan
                offsets = offsets + np.nan_to_num(np.nanmedian(rel[exact], 0))
        return offsets

    def match_table(self) -> MatchTable:
        """Fit every face to its photo's crop and decide which are kept (computed once)."""
        if self._table is not None:
            return self._table
        crop_index, exact = self._photo_crop_index()
        fit, _, _ = self._fit(crop_index, self._scheme_offsets(crop_index, exact))
        residual_px = fit.residual / crop_pixel_size(self.crops.roi_box[crop_index])[:, None]
        n_points = np.isfinite(residual_px).sum(1)
        with _quiet_nan_warnings():
            median_px = np.nanmedian(residual_px, 1)
            mean_px = np.nanmean(residual_px, 1)
        enough = n_points >= MIN_FIT_POINTS
        score = np.where(enough & np.isfinite(mean_px), mean_px, np.inf)

        # Group the faces by photo (= crop), best score first; the best of each photo is matched.
        order = np.lexsort((score, crop_index))
        sorted_ci = crop_index[order]
        starts = np.flatnonzero(np.r_[True, sorted_ci[1:] != sorted_ci[:-1]])
        group_size = np.diff(np.r_[starts, len(order)])
        best = order[starts]
        matched = np.zeros(len(self), bool)
        matched[best] = True
        alone = np.zeros(len(self), bool)
        alone[best[group_size == 1]] = True
        runner_up = np.full(len(self), np.inf)
        runner_up[best[group_size > 1]] = score[order[starts[group_size > 1] + 1]]

        good = matched & enough & (median_px <= MAX_RESIDUAL_PX)
        with np.errstate(invalid="ignore", over="ignore"):
            unambiguous = np.where(alone, median_px <= MAX_RESIDUAL_LONE_PX,
                                   runner_up >= AMBIGUITY_RATIO * score)
        kept = good & (exact | unambiguous)
        self._table = MatchTable(crop_index, exact, fit, residual_px, median_px, mean_px, n_points,
                                 matched, kept)
        return self._table

    def crop_labels(self) -> dict[str, np.ndarray]:
        """The kept faces, sorted by crop index (each crop at most once).

        crop_index (M,) int64 index into the AFLWCrops; pts68 (M, 68, 2) float32 in the package crop
        frame, NaN where MERL-RAV gives no position; visibility (M, 68) int8 (2 visible,
        1 occluded-estimated, 0 self-occluded); fit_residual_px (M,) float32 median residual of the
        21-point fit in crop pixels; split (M,) str MERL-RAV's pose group / split; name (M,) str the
        MERL-RAV face name.
        """
        if self._labels is not None:
            return self._labels
        t = self.match_table()
        j = np.flatnonzero(t.kept)
        j = j[np.argsort(t.crop_index[j], kind="stable")]
        ci = t.crop_index[j]
        mapped = t.fit.scale[j, None, None] * self.pts68_orig[j] + t.fit.shift[j, None, :]
        pts = image_to_crop(mapped, self.crops.roi_box[ci], CROP_SIZE)
        self._labels = {
            "crop_index": ci.astype(np.int64),
            "pts68": pts.astype(np.float32),
            "visibility": self.visibility[j].copy(),
            "fit_residual_px": t.median_px[j].astype(np.float32),
            "split": self.split[j].copy(),
            "name": np.asarray([self.names[k] for k in j]),
        }
        return self._labels


def crop_pixel_size(roi_box: np.ndarray) -> np.ndarray:
    """(M,) size of one crop pixel in the 450 frame (mean of the x and y box scales)."""
    box = np.asarray(roi_box, dtype=np.float64)
    return ((box[..., 2] - box[..., 0]) + (box[..., 3] - box[..., 1])) / (2 * CROP_SIZE)


def _box_size(pts68: np.ndarray) -> np.ndarray:
    """(N,) sqrt(w * h) of each label's bounding box over its positioned points."""
    with _quiet_nan_warnings():
        wh = np.nanmax(pts68, 1) - np.nanmin(pts68, 1)
    return np.sqrt(np.prod(wh, -1))


@contextmanager
def _quiet_nan_warnings() -> Iterator[None]:
    """Silence numpy's all-NaN-slice RuntimeWarnings (an absent face or point is expected)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
