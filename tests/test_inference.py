"""HeadAligner on real photos: the bundled astronaut photo and AFLW2000-3D images."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from test_inference_data import (
    FRONTAL_AFLW,
    MODEL,
    PROFILE_AFLW,
    aflw_path,
    aflw_pose_deg,
    aflw_truth,
    nme,
    no_face_bgr,
    photo_bgr,
    photo_path,
)

from trans3dhead import FaceResult, HeadAligner
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.face_model.bfm import load_bfm_arrays
from trans3dhead.face_model.frames import crop_to_image, warp_crop
from trans3dhead.face_model.pose import rotation_from_euler
from trans3dhead.face_model.frames import FLIP_Y
from trans3dhead.inference.crops import crop_box_from_landmarks, extract_crop
from trans3dhead.weights import load_network


def inside_box(pts: np.ndarray, box: np.ndarray) -> bool:
    """The inner landmarks (brows, eyes, nose, mouth: 17-67) lie strictly inside the detector box;
    the jaw contour (0-16), which RetinaFace's tight box cuts at the cheeks, within 10 % of its size."""
    inner = np.all((pts[17:] > box[:2]) & (pts[17:] < box[2:]))
    margin = 0.10 * (box[2:] - box[:2])
    return bool(inner and np.all((pts >= box[:2] - margin) & (pts <= box[2:] + margin)))


@pytest.fixture(scope="module")
def aligner():
    """The default aligner (one pass: second_pass is off by default)."""
    torch.set_num_threads(1)
    aligner = HeadAligner(model=MODEL, threads=1)
    assert aligner.second_pass is False
    return aligner


@pytest.fixture(scope="module")
def two_pass():
    """The same model with second_pass=True: crops again around the first pass's landmarks."""
    return HeadAligner(model=MODEL, second_pass=True, threads=1)


def _network_on_crop(image_bgr: np.ndarray, crop_box: np.ndarray):
    """The weights' network run directly on the crop of crop_box: (68, 3) crop-frame landmarks, (62,) params."""
    x = torch.from_numpy(extract_crop(image_bgr, crop_box)).permute(2, 0, 1)[None].float()
    with torch.inference_mode():
        lm, params = load_network(MODEL)(x)[:2]
    return lm[0].numpy(), params[0].numpy()


def test_frontal_photo(aligner):
    faces = aligner(str(photo_path()))
    assert len(faces) == 1
    f = faces[0]
    assert isinstance(f, FaceResult)
    assert abs(f.pose.yaw) < 15 and abs(f.pose.pitch) < 25 and abs(f.pose.roll) < 15
    assert f.score > 0.9
    assert inside_box(f.landmarks_2d, f.box)
    assert f.landmarks_3d.shape == (68, 3) and f.shape_params.shape == (40,) and f.expression_params.shape == (10,)
    assert np.all(np.isfinite(f.params))


@pytest.mark.parametrize("name", FRONTAL_AFLW)
def test_aflw_frontal_faces_match_ground_truth(aligner, name):
    faces = aligner(aflw_path(name))
    gt, _ = aflw_truth(name)
    best = min(faces, key=lambda f: nme(f.landmarks_2d, gt))
    # 3ddfa-mb05 averages 2.7 % on the [0, 30) bin; 6 % catches a wrong frame or crop policy
    assert nme(best.landmarks_2d, gt) < 6.0
    assert abs(best.pose.yaw - aflw_pose_deg(name)[0]) < 10
    assert inside_box(best.landmarks_2d, best.box)


@pytest.mark.parametrize("name", PROFILE_AFLW)
def test_yaw_sign_follows_pose_para(aligner, name):
    """A wrong Euler order or a mirrored frame flips or shrinks yaw on profiles."""
    faces = aligner(aflw_path(name))
    gt, _ = aflw_truth(name)
    best = min(faces, key=lambda f: nme(f.landmarks_2d, gt))
    truth = aflw_pose_deg(name)
    assert np.sign(best.pose.yaw) == np.sign(truth[0]) and abs(best.pose.yaw - truth[0]) < 15


def test_input_kinds_agree(aligner):
    """A path, a BGR array, an RGB array with channels='rgb' and a PIL image give the same faces."""
    bgr = photo_bgr()
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    ref = aligner(photo_path())[0].landmarks_3d
    for image, channels in ((bgr, "bgr"), (rgb, "rgb"), (Image.fromarray(rgb), "bgr")):
        np.testing.assert_allclose(aligner(image, channels=channels)[0].landmarks_3d, ref, atol=1e-4)
    # the wrong channel order still runs; its landmarks differ, which shows the argument is used
    assert np.abs(aligner(rgb, channels="bgr")[0].landmarks_3d - ref).max() > 1e-3


def test_batch_equals_single(aligner):
    images = [photo_bgr(), aflw_path(FRONTAL_AFLW[0]), no_face_bgr(), aflw_path(FRONTAL_AFLW[1])]
    batched = aligner.align_batch(images)
    assert isinstance(batched, list) and len(batched) == 4 and batched[2] == []
    for image, faces in zip(images, batched):
        single = aligner(image)
        assert len(single) == len(faces)
        for a, b in zip(single, faces):
            np.testing.assert_allclose(a.landmarks_3d, b.landmarks_3d, atol=1e-3)


def test_align_directory(aligner, tmp_path):
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "a.png"), photo_bgr())
    cv2.imwrite(str(tmp_path / "b.jpg"), no_face_bgr())
    (tmp_path / "c.jpg").write_text("not an image")
    (tmp_path / "notes.txt").write_text("skipped")
    results = list(aligner.align_directory(tmp_path, progress=False))
    assert [r.path.replace(str(tmp_path), "") for r in results] == ["/b.jpg", "/c.jpg", "/sub/a.png"]
    assert results[0].faces == [] and "not a readable image" in results[1].error and len(results[2].faces) == 1
    with pytest.raises(Trans3DHeadError, match="not a folder"):
        list(aligner.align_directory(tmp_path / "b.jpg"))


def test_no_face_gives_empty_list(aligner):
    assert aligner(no_face_bgr()) == []


def test_several_faces_in_one_image(aligner):
    """Four AFLW2000-3D photos tiled 2x2: four faces, each on its own ground truth."""
    import cv2

    names = FRONTAL_AFLW + ("image00019",)
    tiles = [cv2.imread(str(aflw_path(n))) for n in names]
    grid = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    faces = aligner(grid)
    assert len(faces) >= 4
    for k, name in enumerate(names):
        gt = aflw_truth(name)[0] + [450 * (k % 2), 450 * (k // 2)]
        assert min(nme(f.landmarks_2d, gt) for f in faces) < 6.0


def test_given_boxes_reproduce_the_benchmark_crop(aligner, two_pass):
    """boxes=roi_box, one pass (the default) == the network on the crop of roi_box, mapped back with
    it; with second_pass the given box is only the first crop and the answer comes from a new one."""
    name = FRONTAL_AFLW[0]
    _, roi = aflw_truth(name)
    face = aligner(aflw_path(name), boxes=[roi])[0]
    img = cv2.imread(str(aflw_path(name)))
    lm, params = _network_on_crop(img, roi)
    std = load_bfm_arrays()["param_std"]
    np.testing.assert_allclose(face.landmarks_3d, crop_to_image(lm, roi), atol=2e-3)
    np.testing.assert_allclose(face.params / std, params / std, atol=1e-4)
    assert face.score == 1.0 and np.allclose(face.box, roi) and np.allclose(face.crop_box, roi)
    again = two_pass(aflw_path(name), boxes=[roi])[0]
    assert np.allclose(again.box, roi) and np.abs(again.crop_box - roi).max() > 0.5
    np.testing.assert_allclose(again.crop_box, crop_box_from_landmarks(face.landmarks_2d), atol=1e-6)


def test_mesh_geometry(aligner):
    face = aligner(photo_bgr())[0]
    mesh = face.mesh()
    kp = load_bfm_arrays()["keypoints"]
    assert mesh.vertices.shape == (38365, 3) and mesh.triangles.shape == (76073, 3)
    # the mesh's keypoints are the 3DMM decode; the default model's landmarks fuse that decode with
    # its landmark branch (docs/model.md), so they agree closely but not exactly
    gap = np.linalg.norm(mesh.vertices[kp, :2] - face.landmarks_3d[:, :2], axis=1)
    assert gap.mean() < 1.5 and gap.max() < 6.0, (gap.mean(), gap.max())
    # triangles are wound toward the camera: most of a frontal face's area faces +z
    v, t = mesh.vertices.astype(np.float64), mesh.triangles
    nz = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])[:, 2]
    assert nz[nz > 0].sum() > 20 * -nz[nz < 0].sum()
    # the nose tip is closer to the camera than the face's outline
    assert face.landmarks_3d[30, 2] > face.landmarks_3d[:17, 2].mean()


def test_small_boxes_crop_like_the_benchmark_warp():
    """Up to 2 image pixels per crop pixel the crop is the benchmark's plain bilinear warp; above,
    the region is area-averaged first (on AFLW2000-3D that changed NME by -0.004 +- 0.012)."""
    img = photo_bgr()
    box = np.array([150.0, 40.0, 380.0, 270.0])  # 230 px: 1.92 px per crop pixel
    np.testing.assert_array_equal(extract_crop(img, box), warp_crop(img, box))
    big = np.array([100.0, 0.0, 400.0, 300.0])  # 2.5 px per crop pixel
    diff = np.abs(extract_crop(img, big).astype(int) - warp_crop(img, big).astype(int))
    assert 0 < diff.mean() < 6  # the same view, less aliased


def test_pose_and_camera_are_consistent(aligner):
    face = aligner(photo_bgr())[0]
    r = rotation_from_euler(*np.radians([face.pose.yaw, face.pose.pitch, face.pose.roll]))
    np.testing.assert_allclose(face.pose.rotation, r, atol=1e-6)
    np.testing.assert_allclose(face.pose.rotation @ face.pose.rotation.T, np.eye(3), atol=1e-6)
    # documented: A[:, :3] ~ scale * diag(1, -1, 1) @ R.T (equal up to the network's non-orthogonality:
    # max |A A^T / s^2 - I| on the 930 validation crops has a median of 0.026-0.032 and a 95th
    # percentile of 0.067-0.099 for the reference and the shipped models; 0.042 and 0.055 of the
    # scale on this photo for attempts 9 and 14)
    approx = face.pose.scale * FLIP_Y @ face.pose.rotation.T
    assert np.abs(face.camera_matrix[:, :3] - approx).max() < 0.1 * face.pose.scale
    np.testing.assert_allclose(face.pose.translation, face.camera_matrix[:, 3])


@pytest.mark.parametrize("passes", ["one_pass", "two_pass"])
def test_params_round_trip_to_the_network_output(aligner, two_pass, passes):
    """face.params is the network's output on the face's own (final) crop_box, one pass or two."""
    face = (aligner if passes == "one_pass" else two_pass)(photo_bgr())[0]
    _, params = _network_on_crop(photo_bgr(), face.crop_box)
    std = load_bfm_arrays()["param_std"]
    np.testing.assert_allclose(face.params / std, params / std, atol=1e-4)


def test_second_pass_recrops_around_the_landmarks(aligner, two_pass):
    """The second crop is 3DDFA's landmark box (roi_box rule) of the first pass's landmarks, not the
    detector crop; the answer moves a little (the same face), not a lot."""
    from trans3dhead.face_model.frames import roi_box_from_landmarks

    first = aligner(photo_bgr())[0]
    second = two_pass(photo_bgr())[0]
    np.testing.assert_allclose(second.box, first.box)  # same detection
    assert np.abs(second.crop_box - first.crop_box).max() > 1.0  # a new crop ...
    np.testing.assert_allclose(second.crop_box, roi_box_from_landmarks(first.landmarks_2d), atol=1e-6)  # ... this one
    moved = np.abs(second.landmarks_2d - first.landmarks_2d).mean()
    assert 0 < moved < 3.0


def test_bad_arguments_are_one_line_errors(aligner):
    with pytest.raises(Trans3DHeadError, match="channels"):
        aligner(photo_bgr(), channels="rgba")
    with pytest.raises(Trans3DHeadError, match="list"):
        aligner(np.stack([photo_bgr()] * 2))
    with pytest.raises(Trans3DHeadError, match="one per image"):
        aligner.align_batch([photo_bgr()], boxes=[None, None])
    with pytest.raises(Trans3DHeadError, match="float"):
        aligner(photo_bgr().astype(np.float32))
    with pytest.raises(Trans3DHeadError, match="no such named model"):
        HeadAligner(model="no-such-model")
    with pytest.raises(Trans3DHeadError, match="backend"):
        HeadAligner(model=MODEL, backend="tensorrt")


def test_fused_landmarks_are_the_mean_of_the_branch_and_the_3dmm_decode(aflw2000_root):
    """landmark_source="fused" (the shipped default's, docs/model.md) = (branch + 3dmm) / 2, with
    the same parameters, on real AFLW2000-3D crops; the two sources differ, so the check has teeth."""
    from trans3dhead.fileio import read_image_file
    from trans3dhead.model.trans3dhead import Trans3DHeadPredictor
    from trans3dhead.weights import read_weights, resolve_weights

    payload = read_weights(resolve_weights(MODEL))
    assert payload["model_config"]["landmark_source"] == "fused"
    names = FRONTAL_AFLW + PROFILE_AFLW
    crops = np.stack([read_image_file(aflw2000_root / "crops_120" / f"{n}.jpg") for n in names])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
    out = {}
    for source in ("branch", "3dmm", "fused"):
        net = Trans3DHeadPredictor.from_config({**payload["model_config"], "landmark_source": source})
        net.load_state_dict(payload["state_dict"], strict=True)
        with torch.inference_mode():
            out[source] = [t.numpy() for t in net.eval()(x)[:2]]
    (branch, p_branch), (dmm, p_dmm), (fused, p_fused) = out["branch"], out["3dmm"], out["fused"]
    np.testing.assert_array_equal(p_branch, p_fused)
    np.testing.assert_array_equal(p_dmm, p_fused)
    gap = np.linalg.norm(branch[..., :2] - dmm[..., :2], axis=-1).mean()
    assert gap > 0.05, gap  # measured: 0.14 px mean on these 5 crops (the cross-branch loss pulls them together)
    np.testing.assert_allclose(fused, (branch + dmm) / 2, atol=1e-4)
    weighted = Trans3DHeadPredictor.from_config({**payload["model_config"], "branch_weight": 0.8})
    weighted.load_state_dict(payload["state_dict"], strict=True)
    with torch.inference_mode():
        np.testing.assert_allclose(weighted.eval()(x)[0].numpy(), 0.8 * branch + 0.2 * dmm, atol=1e-4)
    with torch.inference_mode():
        shipped = load_network(MODEL)(x)[0]
    np.testing.assert_allclose(shipped.numpy(), fused, rtol=1e-6, atol=1e-5)  # float32 rounding of ~100 px values


def test_disagreement_factor_maps_the_answer_gap_back_to_the_branch_gap():
    """The quality's branch agreement needs |branch - 3DMM|; a fused answer sits w of the way from
    the 3DMM landmarks to the branch, so its gap is scaled by 1 / w (2 for the shipped even mean)."""
    from trans3dhead.weights import disagreement_factor_of, read_weights, resolve_weights

    payload = read_weights(resolve_weights(MODEL))
    assert disagreement_factor_of(payload) == 2.0
    assert HeadAligner(model=MODEL).disagreement_factor == 2.0
    cfg = payload["model_config"]
    assert disagreement_factor_of({**payload, "model_config": {**cfg, "branch_weight": 0.8}}) == 1.25
    assert disagreement_factor_of({**payload, "model_config": {**cfg, "landmark_source": "branch"}}) == 1.0
    assert disagreement_factor_of({**payload, "model_config": {**cfg, "landmark_source": "3dmm"}}) is None
    assert disagreement_factor_of(read_weights(resolve_weights("3ddfa-mb05"))) is None


def test_flip_averages_with_the_mirrored_crop_exactly(aflw2000_root):
    """HeadAligner(flip=True) on real AFLW2000-3D crops: the answer for a crop's mirror is the
    mirror of its answer (exactly: each is the mean of the same two network passes), landmarks and
    visibility; pose and parameters stay the crop's own. Without flip the two disagree by ~1 px."""
    from trans3dhead.face_model.landmarks68 import FLIP_PERM_68, mirror_landmarks
    from trans3dhead.fileio import read_image_file
    from trans3dhead.inference.detectors.base import Detection

    plain, flipped = HeadAligner(model=MODEL, threads=1), HeadAligner(model=MODEL, threads=1, flip=True)
    box = np.array([[0.0, 0.0, 120.0, 120.0]])
    det = [Detection(box=box[0], score=1.0)]
    gaps = []
    for name in FRONTAL_AFLW + PROFILE_AFLW:
        crop = read_image_file(aflw2000_root / "crops_120" / f"{name}.jpg")
        mirror = np.ascontiguousarray(crop[:, ::-1])
        (a,), (b,) = flipped.align_crops(crop, box, det), flipped.align_crops(mirror, box, det)
        np.testing.assert_allclose(mirror_landmarks(b.landmarks_3d, 120.0), a.landmarks_3d, atol=1e-3)
        np.testing.assert_allclose(b.visibility_probs[FLIP_PERM_68], a.visibility_probs, atol=1e-5)
        (p,), (q,) = plain.align_crops(crop, box, det), plain.align_crops(mirror, box, det)
        np.testing.assert_allclose(p.shape_params, a.shape_params)  # parameters: the crop's own pass
        np.testing.assert_allclose((p.landmarks_3d + mirror_landmarks(q.landmarks_3d, 120.0)) / 2, a.landmarks_3d, atol=1e-3)
        gaps.append(np.linalg.norm(mirror_landmarks(q.landmarks_2d, 120.0)[:, :2] - p.landmarks_2d, axis=1).mean())
    assert np.mean(gaps) > 0.2, gaps  # the plain network is not mirror-consistent, so the check has teeth
