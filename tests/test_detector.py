"""Detector plug-ins and their box -> crop policies, on real photos."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_inference_data import FRONTAL_AFLW, MODEL, aflw_path, aflw_truth, no_face_bgr, photo_bgr

from trans3dhead import HeadAligner
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.inference.detectors import (
    CropPolicy,
    Detection,
    FaceDetector,
    GivenBoxes,
    RetinaFaceDetector,
    build_detector,
)
from trans3dhead.inference.detectors.retinaface import RETINAFACE_CROP_POLICY


def iou(a, b) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = np.prod(np.clip(hi - lo, 0, None))
    return float(inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter))


@pytest.fixture(scope="module")
def detector():
    return RetinaFaceDetector(threads=1)


def test_crop_policy_geometry():
    box = np.array([10.0, 20.0, 50.0, 80.0])  # w 40, h 60, size 50, centre (30, 50)
    np.testing.assert_allclose(CropPolicy().crop_box(box), [5, 25, 55, 75])
    np.testing.assert_allclose(CropPolicy(scale=2.0, shift_x=0.1, shift_y=-0.2).crop_box(box), [-15, -10, 85, 90])
    many = CropPolicy(1.2, 0.0, 0.07).crop_box(np.stack([box, box + 5]))
    assert many.shape == (2, 4)
    np.testing.assert_allclose(many[:, 2] - many[:, 0], many[:, 3] - many[:, 1])  # always square


def test_retinaface_finds_the_photo_face(detector):
    dets = detector.detect(photo_bgr())
    assert len(dets) == 1
    d = dets[0]
    assert d.score > 0.99
    x0, y0, x1, y1 = d.box
    assert 150 < x0 < x1 < 300 and 30 < y0 < y1 < 210
    assert d.keypoints.shape == (5, 2)
    assert np.all((d.keypoints >= d.box[:2]) & (d.keypoints <= d.box[2:]))


def test_retinaface_no_face(detector):
    assert detector.detect(no_face_bgr()) == []


def test_retinaface_boxes_scale_with_the_image(detector):
    """A 3x larger copy, shrunk back for detection (max_side), gives a box 3x larger."""
    small = detector.detect(photo_bgr())[0].box
    big_img = cv2.resize(photo_bgr(), None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # 1536 > max_side 1280
    big = detector.detect(big_img)[0].box
    np.testing.assert_allclose(big / 3, small, atol=4.0)


def test_tiny_images_are_padded_not_rejected(detector):
    assert detector.detect(np.full((20, 24, 3), 128, np.uint8)) == []


@pytest.mark.parametrize("name", FRONTAL_AFLW)
def test_calibrated_policy_lands_on_roi_box(detector, name):
    """The fitted constants turn RetinaFace's box into 3DDFA's roi_box (IoU 0.77 or more)."""
    _, roi = aflw_truth(name)
    img = cv2.imread(str(aflw_path(name)))
    boxes = [RETINAFACE_CROP_POLICY.crop_box(d.box) for d in detector.detect(img)]
    assert max(iou(b, roi) for b in boxes) > 0.77


def test_given_boxes():
    g = GivenBoxes([[10, 10, 110, 110, 0.5], [0, 0, 50, 60, 0.25]])
    dets = g.detect(photo_bgr())
    assert [d.score for d in dets] == [0.5, 0.25]
    np.testing.assert_allclose(g.crop_box(dets[1]), [-2.5, 2.5, 52.5, 57.5])  # squared around its centre
    assert GivenBoxes(np.zeros((0, 4))).detect(photo_bgr()) == []
    with pytest.raises(Trans3DHeadError, match="x0 < x1"):
        GivenBoxes([[10, 10, 5, 20]])
    with pytest.raises(Trans3DHeadError, match="shape"):
        GivenBoxes([[1, 2, 3]])


def test_build_detector():
    assert isinstance(build_detector("retinaface"), RetinaFaceDetector)
    with pytest.raises(Trans3DHeadError, match="unknown"):
        build_detector("dlib")


class CentreDetector(FaceDetector):
    """A stand-in plug-in: reports one fixed box (the astronaut's face) and counts its calls."""

    name = "centre"
    crop_policy = RETINAFACE_CROP_POLICY

    def __init__(self):
        self.calls = 0

    def detect(self, image_bgr):
        self.calls += 1
        return [Detection(box=np.array([177.0, 56.0, 272.0, 176.0]), score=0.5)]


def test_a_custom_detector_plugs_in():
    det = CentreDetector()
    aligner = HeadAligner(model=MODEL, detector=det, threads=1)
    faces = aligner.align_batch([photo_bgr(), photo_bgr()])
    assert det.calls == 2 and [len(f) for f in faces] == [1, 1]
    assert faces[0][0].score == 0.5 and abs(faces[0][0].pose.yaw) < 15


def test_given_boxes_with_a_detector_policy():
    """Tight face boxes given with RetinaFace's policy give the same faces as the detector itself."""
    aligner = HeadAligner(model=MODEL, threads=1)
    auto = aligner(photo_bgr())[0]
    given = aligner(photo_bgr(), boxes=GivenBoxes([auto.box], RETINAFACE_CROP_POLICY))[0]
    np.testing.assert_allclose(given.landmarks_3d, auto.landmarks_3d, atol=1e-4)
