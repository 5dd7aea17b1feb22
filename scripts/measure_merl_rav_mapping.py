"""Measure the MERL-RAV -> AFLW-crop mapping (trans3dhead/data/merl_rav.py); numpy only.

    python scripts/measure_merl_rav_mapping.py [--data-root ../shared/data] [--draw OUT.png]

Prints how many MERL-RAV faces were matched to a crop and kept, and the fit residuals in crop
pixels. --draw writes a montage of a few kept crops with the mapped 68 points (jaw white, image-left
eye/brow red, image-right eye/brow green) and the AFLW 21 points (blue crosses) to check the sense.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from trans3dhead.data.aflw_crops import AFLWCrops
from trans3dhead.data.merl_rav import AFLW21_TO_68, MerlRav, aflw21_from_68, fit_scale_shift

ROOT = Path(__file__).resolve().parents[1]
# AFLW 21-point order with left and right swapped.
AFLW21_MIRROR = np.array([5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 16, 15, 14, 13, 12, 19, 18, 17, 20])


def _pct(x: np.ndarray) -> str:
    return f"median {np.median(x):.2f}, 90th pct {np.percentile(x, 90):.2f}, 99th pct {np.percentile(x, 99):.2f}"


def draw(merl: MerlRav, out: Path, count: int = 12, seed: int = 0) -> None:
    import cv2

    labels = merl.crop_labels()
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(labels["crop_index"]), count, replace=False)
    tiles = []
    for k in picks:
        i = int(labels["crop_index"][k])
        img = cv2.resize(merl.crops.read_crop(i), (360, 360), interpolation=cv2.INTER_LINEAR)
        s = 3.0  # crop px -> tile px (pixel-corner frame: tile = 3 * crop)
        for n, (x, y) in enumerate(labels["pts68"][k]):
            if np.isnan(x):
                continue
            colour = (255, 255, 255) if n < 17 else (0, 0, 255) if n in (*range(17, 22), *range(36, 42)) else \
                (0, 255, 0) if n in (*range(22, 27), *range(42, 48)) else (0, 255, 255)
            cv2.circle(img, (int(x * s), int(y * s)), 3, colour, -1)
        for x, y in merl.crops.pts21_crop(i):
            if not np.isnan(x):
                cv2.drawMarker(img, (int(x * s), int(y * s)), (255, 0, 0), cv2.MARKER_CROSS, 10, 2)
        cv2.putText(img, f"{labels['name'][k]} {labels['fit_residual_px'][k]:.1f}px", (4, 16),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
        tiles.append(img)
    rows = [np.concatenate(tiles[r:r + 4], 1) for r in range(0, len(tiles), 4)]
    cv2.imwrite(str(out), np.concatenate(rows, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--draw", type=Path, default=None, help="write a check montage (PNG) here")
    args = parser.parse_args()

    merl = MerlRav(args.data_root / "merl_rav", AFLWCrops(args.data_root / "aflw_crops"))
    t = merl.match_table()
    labels = merl.crop_labels()
    print(f"MERL-RAV faces: {len(merl)} ({t.exact.sum()} exact names, {(~t.exact).sum()} suffixed) "
          f"for {len(merl.crops)} crops")
    print(f"matched to a crop: {t.matched.sum()} ({(t.matched & t.exact).sum()} exact, "
          f"{(t.matched & ~t.exact).sum()} suffixed best of photo)")
    photo_faces = np.bincount(t.crop_index, minlength=len(merl.crops))[t.crop_index]
    lone = ~t.exact & (photo_faces == 1)
    print(f"kept: {t.kept.sum()} ({(t.kept & t.exact).sum()} exact, {(t.kept & ~t.exact & ~lone).sum()} from "
          f"multi-face photos, {(t.kept & lone).sum()} of {lone.sum()} lone suffixed)")
    print(f"fit residual of kept faces (crop px): {_pct(labels['fit_residual_px'])}")
    ex = t.matched & t.exact & np.isfinite(t.median_px)
    print(f"fit residual of all exact-name faces (crop px): {_pct(t.median_px[ex])}")
    fitted = [k for k, idx in enumerate(AFLW21_TO_68) if idx is not None]
    per_point = np.nanmedian(t.residual_px[t.kept][:, fitted], 0)
    print("median residual per AFLW point (crop px):", ", ".join(f"{k}: {v:.2f}" for k, v in zip(fitted, per_point)))
    vis = labels["visibility"]
    print(f"kept points: {(vis == 2).mean():.1%} visible, {(vis == 1).mean():.1%} occluded-estimated, "
          f"{(vis == 0).mean():.1%} self-occluded (NaN)")
    # Left/right sense: the same exact-name fits with AFLW's left and right swapped.
    ex = np.flatnonzero(t.exact)
    src = aflw21_from_68(merl.pts68_orig[ex])
    dst = merl.crops.pts21_img[t.crop_index[ex]].copy()
    dst[(dst < 0).any(-1)] = np.nan
    for sense, perm in (("as used", np.arange(21)), ("mirrored", AFLW21_MIRROR)):
        res = fit_scale_shift(src, dst[:, perm]).residual
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(np.nanmedian(res, 1))
        print(f"exact-name fits, correspondence {sense}, no scheme offsets: median residual {med:.1f} px (450 frame)")
    if args.draw:
        draw(merl, args.draw)
        print("wrote", args.draw)


if __name__ == "__main__":
    main()
