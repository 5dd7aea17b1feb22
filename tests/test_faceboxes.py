"""The FaceBoxes detector on real photos: its anchors against the network's outputs, recall on
AFLW2000-3D photos, its crop policy, and the fallback between it and RetinaFace (each runs the
other where it finds no face)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_detector import iou
from test_inference_data import PROFILE_AFLW, aflw_path, aflw_truth, photo_bgr

from trans3dhead.inference import HeadAligner
from trans3dhead.inference.detectors import (
    DEFAULT_DETECTOR,
    FaceBoxesDetector,
    FallbackDetector,
    RetinaFaceDetector,
    build_detector,
)
from trans3dhead.inference.detectors.faceboxes import anchors_for
from trans3dhead.inference.detectors.onnx_detector import input_blob

# An AFLW2000-3D photo in which FaceBoxes finds no face at its threshold (36 of 2000 are such,
# cache/faceboxes_aflw2000_3d.npz of scripts/calibrate_detector.py) and RetinaFace finds it.
FACEBOXES_EMPTY = "image00482"


@pytest.fixture(scope="module")
def alone():
    return FaceBoxesDetector(threads=1)


def test_named_detectors_fall_back_on_each_other():
    det = build_detector()
    assert DEFAULT_DETECTOR == "retinaface" and isinstance(det, FallbackDetector)
    assert isinstance(det.primary, RetinaFaceDetector) and isinstance(det.fallback, FaceBoxesDetector)
    assert det.score_threshold == 0.9 and det.fallback.score_threshold == 0.5 and det.max_side == 1280
    fast = build_detector("faceboxes", score_threshold=0.7, max_side=1280)
    assert isinstance(fast.primary, FaceBoxesDetector) and isinstance(fast.fallback, RetinaFaceDetector)
    assert fast.score_threshold == fast.fallback.score_threshold == 0.7 and fast.max_side == 1280
    assert isinstance(build_detector("faceboxes", fallback=False), FaceBoxesDetector)
    aligner = HeadAligner(model="3ddfa-mb05", backend="torch", detector="faceboxes")
    assert aligner.detector.name == "faceboxes"


@pytest.mark.parametrize("shape", [(450, 450), (33, 47), (1241, 1920), (200, 130)])
def test_anchors_match_the_networks_outputs(alone, shape):
    """One anchor per output row at any input size (strides 32/64/128, 21 + 1 + 1 anchors a cell),
    and the densified 32-px anchors of the first cell start at its corner."""
    img = np.full((*shape, 3), 128, np.uint8)
    loc, score = alone._get_session().run(None, {"input": input_blob(img, (104.0, 117.0, 123.0))})
    a = anchors_for(*shape)
    assert loc.shape == (1, len(a), 4) and score.shape == (1, len(a))
    np.testing.assert_allclose(a[:4], [[0, 0, 32, 32], [8, 0, 32, 32], [16, 0, 32, 32], [24, 0, 32, 32]])
    np.testing.assert_allclose(a[20], [16, 16, 128, 128])  # the cell's one 128-px anchor, at its centre


def test_finds_the_face_in_real_photos(alone):
    """Every one of the first 60 AFLW2000-3D photos (frontal to profile) and the bundled photo:
    a box over the labelled face (IoU >= 0.3 with its landmarks' box), scoring above 0.5."""
    names = [f"image{n:05d}" for n in range(0, 200)]
    names = [n for n in names if aflw_path(n).is_file()][:60]
    for name in names + list(PROFILE_AFLW):
        lm, _ = aflw_truth(name)
        gt = np.concatenate([lm.min(0), lm.max(0)])
        dets = alone.detect(cv2.imread(str(aflw_path(name))))
        assert dets and max(iou(d.box, gt) for d in dets) >= 0.3, name
    assert len(alone.detect(photo_bgr())) == 1


def test_fallback_runs_retinaface_where_faceboxes_finds_nothing(alone):
    img = cv2.imread(str(aflw_path(FACEBOXES_EMPTY)))
    assert alone.detect(img) == []
    default = build_detector("faceboxes", threads=1)
    dets = default.detect(img)
    assert dets and all(d.source == "retinaface" for d in dets)
    rf = RetinaFaceDetector(threads=1)
    # the fallback's detections keep RetinaFace's crop policy
    np.testing.assert_array_equal(default.crop_box(dets[0]), rf.crop_box(rf.detect(img)[0]))
    lm, _ = aflw_truth(FACEBOXES_EMPTY)
    gt = np.concatenate([lm.min(0), lm.max(0)])
    assert max(iou(d.box, gt) for d in dets) >= 0.3


def test_shrinks_large_images_and_keeps_the_frame(alone):
    """A photo larger than max_side is shrunk for detection; boxes come back in its own pixels."""
    small = alone.detect(photo_bgr())[0].box
    big = alone.detect(cv2.resize(photo_bgr(), None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC))[0].box  # 2048 px
    np.testing.assert_allclose(big / 4, small, atol=6.0)


def test_input_blob_equals_opencvs():
    img = photo_bgr()
    np.testing.assert_array_equal(input_blob(img, (104.0, 117.0, 123.0)),
                                  cv2.dnn.blobFromImages([img], 1.0, None, (104.0, 117.0, 123.0), False, False))


def test_all_detectors_tags_and_crops_each_box_by_its_finder():
    """The face-score stage's AllDetectors: every box of each detector, tagged with its name and
    cropped by that detector's own policy."""
    from trans3dhead.inference.detectors.base import AllDetectors

    rf, fb = RetinaFaceDetector(threads=1), FaceBoxesDetector(threads=1)
    both = AllDetectors([rf, fb])
    dets = both.detect(photo_bgr())
    assert both.name == "retinaface+faceboxes" and [d.source for d in dets] == ["retinaface", "faceboxes"]
    np.testing.assert_array_equal(both.crop_box(dets[0]), rf.crop_box(rf.detect(photo_bgr())[0]))
    np.testing.assert_array_equal(both.crop_box(dets[1]), fb.crop_box(fb.detect(photo_bgr())[0]))
