"""The face-quality constants re-derived for a shipped model by their rules (inference/quality.py;
docs/results.md, attempt 8), and how well the branch-agreement cue separates non-faces:

    python scripts/measure_quality_constants.py [--model trans3dhead]

1. AGREEMENT_HALF's rule: the 98th percentile of the branch disagreement (|branch - 3DMM| landmarks,
   mean over the 68 points, % of the crop side) on the cleaned validation split's crops.
2. RECOMMENDED_MIN_QUALITY's rule: 0.5 for a model with a face-score head; otherwise the lowest
   quality of a face the default detector finds on every 10th frame of the shared clip and the
   bundled photo, rounded down to 0.05, less 0.05; and the validation crops it would drop.
3. The cue on non-faces: the disagreement of every detection (detector threshold 0.5) on the
   non-face images of tests/test_quality.py, over the validation faces' 98th percentile, for all
   points, the inner points only, and with each landmark's median validation offset removed.
"""
from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np
import torch

from trans3dhead import HeadAligner
from trans3dhead.config import NEAR_DUPLICATES
from trans3dhead.data.aflw_crops import AFLWCrops, read_exclusion_lists, read_split
from trans3dhead.inference.detectors import RetinaFaceDetector
from trans3dhead.inference.quality import crop_sharpness, quality_from_cues
from trans3dhead.training.face_score import detector_views
from trans3dhead.weights import build_network, predict_crops, read_weights, resolve_weights


def cues(diff: np.ndarray, offset: np.ndarray) -> dict[str, np.ndarray]:
    """diff (N, 68, 2) branch - 3DMM, % of the crop side -> per-face disagreement variants."""
    return {"all points": np.linalg.norm(diff, axis=-1).mean(-1),
            "inner points": np.linalg.norm(diff[:, 17:], axis=-1).mean(-1),
            "offset removed": np.linalg.norm(diff - offset, axis=-1).mean(-1)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="trans3dhead")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reader = AFLWCrops("../shared/data/aflw_crops")
    names = read_split("configs/splits/aflw_crops_val.txt")
    excluded, _ = read_exclusion_lists([NEAR_DUPLICATES])
    idx = [i for i, n in enumerate(reader.names) if n in names and n not in excluded]
    crops = np.stack([reader.read_crop(i) for i in idx])
    payload, out = read_weights(resolve_weights(args.model)), {}
    for source in ("branch", "3dmm"):
        payload["model_config"] = {**payload["model_config"], "landmark_source": source}
        out[source] = predict_crops(build_network(payload), crops)[0][..., :2]
    diff = (out["branch"] - out["3dmm"]) / crops.shape[1] * 100
    offset = np.median(diff, 0)
    val = cues(diff, offset)
    p98 = {k: float(np.percentile(v, 98)) for k, v in val.items()}
    print(f"1. validation crops {len(idx)}: disagreement median {np.median(val['all points']):.3f}, "
          f"98th percentile {p98['all points']:.3f} (AGREEMENT_HALF's rule)")

    aligner = HeadAligner(model=args.model, threads=1)
    cap, qualities, i = cv2.VideoCapture("../shared/data/video/side_profile.mp4"), [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % 10 == 0:
            qualities += [f.quality for f in aligner(frame)]
        i += 1
    photo = aligner("trans3dhead/assets/example_astronaut.jpg")[0].quality
    lowest = min(min(qualities), photo)
    has_face_score = "face_score" in aligner.network.output_names
    if has_face_score:  # the face score's decision point; the quality of each crop as the aligner gives it
        from trans3dhead.inference.detectors import Detection

        rule, box = 0.5, np.array([[0.0, 0.0, crops.shape[2], crops.shape[1]]])
        q_val = np.array([aligner.align_crops(c, box, [Detection(box=box[0], score=1.0)])[0].quality for c in crops])
    else:  # the lowest clip or photo face, rounded down to 0.05, less 0.05
        rule = np.floor(lowest * 20) / 20 - 0.05
        q_val = np.array([quality_from_cues(a, crop_sharpness(c)) for a, c in zip(val["all points"], crops)])
    print(f"2. clip faces {len(qualities)} (every 10th frame), lowest quality {min(qualities):.3f}; photo {photo:.3f}; "
          f"rule ({'face score: 0.5' if has_face_score else 'lowest face less 0.05'}) -> {rule:.2f}; "
          f"validation crops below it: {int((q_val < rule).sum())} of {len(q_val)}")

    sys.path.insert(0, "tests")
    import test_quality as tq  # the non-face images of the tests (scikit-image's and made ones)

    low = HeadAligner(model=args.model, detector=RetinaFaceDetector(score_threshold=0.5, threads=1), threads=1)
    ratios = {k: [] for k in p98}
    images = {name: tq._skimage_bgr(name) for name in tq.NON_FACE_IMAGES} | tq._textures()
    for img in images.values():
        for variant in detector_views(img):
            for f in low(variant):
                # the shipped landmarks may be fused (half way): scaled back to branch - 3DMM as the quality does
                d = low.disagreement_factor * (f.landmarks_2d - f.landmarks_3dmm[:, :2]) \
                    / (f.crop_box[2] - f.crop_box[0]) * 100
                for k, v in cues(d[None], offset).items():
                    ratios[k].append(float(v[0]) / p98[k])
    for k, r in ratios.items():
        print(f"3. {k}: {len(r)} non-face detections, disagreement / validation 98th percentile: "
              f"min {min(r):.2f}, median {np.median(r):.2f}")


if __name__ == "__main__":
    main()
