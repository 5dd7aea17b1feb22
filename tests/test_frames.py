"""Pixel frames (face_model/frames.py): crop <-> image, the warp's pixel-centre convention, the
BFM -> crop offsets, and 3DDFA's box-from-landmarks rule against AFLW2000-3D's roi_box."""
from __future__ import annotations

import numpy as np
import torch

from trans3dhead.face_model.frames import (MATLAB_TO_PKG, ZERO_BASED_TO_PKG, bfm_to_crop, crop_affine, crop_to_image,
                                           image_to_crop, roi_box_from_landmarks, warp_crop)


def _random_boxes(rng, n):
    x0 = rng.uniform(-50, 300, n)
    y0 = rng.uniform(-50, 300, n)
    w = rng.uniform(40, 400, n)
    h = w * rng.uniform(0.9, 1.1, n)  # AFLW2000-3D's clipped boxes are not square
    return np.stack([x0, y0, x0 + w, y0 + h], -1)


def test_crop_image_crop_round_trip():
    rng = np.random.default_rng(0)
    boxes = _random_boxes(rng, 20)
    pts_crop = rng.uniform(-10, 130, (20, 68, 3))
    pts_img = crop_to_image(pts_crop, boxes)
    np.testing.assert_allclose(image_to_crop(pts_img, boxes), pts_crop, atol=1e-9)
    np.testing.assert_allclose(crop_to_image(image_to_crop(pts_img, boxes), boxes), pts_img, atol=1e-9)
    # 2D points and a single box broadcast the same way
    np.testing.assert_allclose(image_to_crop(crop_to_image(pts_crop[0, :, :2], boxes[0]), boxes[0]),
                               pts_crop[0, :, :2], atol=1e-9)


def test_crop_to_image_maps_corner_to_corner_and_scales_z():
    box = np.array([10.0, 20.0, 250.0, 280.0])  # 240 x 260
    pts = np.array([[0.0, 0.0, 0.0], [120.0, 120.0, 12.0], [60.0, 30.0, -6.0]])
    got = crop_to_image(pts, box, crop_size=120)
    np.testing.assert_allclose(got[:, :2], [[10, 20], [250, 280], [130, 85]])
    np.testing.assert_allclose(got[:, 2], pts[:, 2] * (2.0 + 260 / 120) / 2)


def test_crop_affine_samples_pixel_centres():
    """cv2 output pixel u (centre u + 0.5 in the crop frame) samples input index x - 0.5 where
    x = crop_to_image(u + 0.5): the same corner-to-corner map as crop_to_image."""
    rng = np.random.default_rng(1)
    for box in _random_boxes(rng, 5):
        m = crop_affine(box, 120)
        u = rng.uniform(0, 120, (10, 2)).round()
        sampled_index = u @ m[:, :2].T + m[:, 2]
        np.testing.assert_allclose(sampled_index, crop_to_image(u + 0.5, box)[:, :2] - 0.5, atol=1e-9)


def test_warp_crop_moves_a_bright_pixel_by_the_box_offset():
    """Integer box, scale 1: the crop is a pure shift, so the bright pixel lands exactly."""
    img = np.zeros((450, 450, 3), np.uint8)
    img[200, 150] = 255  # row 200, column 150: centre at pkg (150.5, 200.5)
    crop = warp_crop(img, (100.0, 170.0, 220.0, 290.0), 120)
    assert crop.shape == (120, 120, 3)
    row, col = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    assert (row, col) == (30, 50) and crop[30, 50, 0] == 255 and crop[..., 0].sum() == 255


def _centroid_crop(crop):
    """Intensity centroid in the crop frame (pixel (i, j) centre at (j + 0.5, i + 0.5))."""
    w = crop.astype(np.float64)
    ii, jj = np.mgrid[: w.shape[0], : w.shape[1]]
    return np.array([((jj + 0.5) * w).sum() / w.sum(), ((ii + 0.5) * w).sum() / w.sum()])


def test_warp_crop_pixel_centre_convention_at_subpixel_level():
    """A Gaussian blob at a known sub-pixel pkg position, cropped at scale 2 (downsampling) and at
    scale 0.5 (upsampling): its centroid in the crop, mapped back with crop_to_image, is the blob
    centre within 0.05 px. Getting the half-pixel terms of crop_affine wrong shifts it by 0.5 s."""
    centre = np.array([223.3, 187.8])
    yy, xx = np.mgrid[:450, :450] + 0.5
    blob = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * 8.0 ** 2))
    img = np.repeat((blob * 60000).astype(np.uint16)[..., None], 3, -1)  # 16-bit: no rounding bias
    for box in [(100.0, 70.0, 340.0, 310.0), (193.7, 158.2, 253.7, 218.2)]:
        crop = warp_crop(img, box, 120)[..., 0]
        got = crop_to_image(_centroid_crop(crop)[None], np.array(box))[0]
        np.testing.assert_allclose(got, centre, atol=0.05)


def test_warp_crop_pads_outside_the_image_with_zeros():
    img = np.full((100, 100, 3), 200, np.uint8)
    crop = warp_crop(img, (-50.0, -50.0, 70.0, 70.0), 120)
    assert crop[:49, :49].max() == 0 and crop[51:, 51:].min() == 200


def test_bfm_to_crop_offsets_numpy_and_torch():
    """BFM (x right, y up; 0-based centres after 3DDFA's x - 1, 120 - y) -> pkg crop (+0.5)."""
    v = np.array([[1.0, 120.0, 1.0], [61.0, 60.0, 11.0], [120.0, 1.0, -4.0]])
    want = np.array([[0.5, 0.5, 0.0], [60.5, 60.5, 10.0], [119.5, 119.5, -5.0]])
    np.testing.assert_allclose(bfm_to_crop(v), want)
    np.testing.assert_allclose(bfm_to_crop(torch.from_numpy(v)[None]).numpy()[0], want)
    assert ZERO_BASED_TO_PKG == 0.5 and MATLAB_TO_PKG == -0.5


def test_roi_box_from_landmarks_on_a_known_square():
    pts = np.array([[10.0, 20.0], [50.0, 20.0], [30.0, 40.0]])  # bbox 40 x 20, centre (30, 30)
    half = np.sqrt(2) * 40 / 2
    np.testing.assert_allclose(roi_box_from_landmarks(pts), [30 - half, 30 - half, 30 + half, 30 + half])


def test_roi_box_from_landmarks_reproduces_aflw2000_roi_box(aflw2000):
    """3DDFA's boxes were made from pt3d_68 AS STORED (1-based), then rounded and clipped to the
    image as MATLAB indices [1, 450]. Measured 2026-11-24 on all 2000 faces:

    * the float box from stored landmarks is within 0.99 px of roi_box on the 1945 unclipped faces
      (from package-frame landmarks, stored - 0.5, everything moves by -0.5 px);
    * exact rule: x0, y0 = round(box corner), side = round(box side), clip to [1, 450] ->
      equals roi_box on 2000 of 2000 (55 are clipped, hence not square).
    """
    stored = aflw2000.landmarks_stored[..., :2]
    boxes = np.stack([roi_box_from_landmarks(p) for p in stored])
    clipped = np.any((aflw2000.roi_box <= 1) | (aflw2000.roi_box >= 450), 1) & np.any(
        (boxes < 1) | (boxes > 450), 1)
    assert clipped.sum() == 55
    assert np.abs(boxes - aflw2000.roi_box)[~clipped].max() < 1.0

    corner = np.round(boxes[:, :2])
    side = np.round(boxes[:, 2] - boxes[:, 0])[:, None]
    rule = np.clip(np.concatenate([corner, corner + side], 1), 1, 450)
    np.testing.assert_array_equal(rule, aflw2000.roi_box)
