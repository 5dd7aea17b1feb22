"""Videos: frames in, faces that follow the motion, One-Euro smoothing that lowers jitter, and
clear errors for empty or corrupt files. Clips are made here from the bundled real photo."""
from __future__ import annotations

import numpy as np
import pytest
from test_inference_data import MODEL, photo_bgr, shifted, write_clip

from trans3dhead import HeadAligner
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.inference.video import OneEuroFilter, iter_frames, open_video


@pytest.fixture(scope="module")
def aligner():
    return HeadAligner(model=MODEL, threads=1, batch_size=8)


def test_round_trip_follows_known_shifts(tmp_path, aligner):
    shifts = [(3.0 * t, -2.0 * t) for t in range(10)]
    clip = write_clip(tmp_path / "shifts.mp4", [shifted(photo_bgr(), dx, dy) for dx, dy in shifts], fps=10)
    frames = list(aligner.align_video(clip))
    assert [f.index for f in frames] == list(range(10))
    assert np.allclose([f.time_s for f in frames], np.arange(10) / 10)
    assert all(len(f.faces) == 1 for f in frames)
    assert {f.faces[0].track_id for f in frames} == {0}
    ref = frames[0].faces[0].landmarks_2d
    for (dx, dy), fr in zip(shifts, frames):
        moved = (fr.faces[0].landmarks_2d - ref).mean(0)
        assert np.abs(moved - [dx, dy]).max() < 1.5, (dx, dy, moved)


def _jitter(track: np.ndarray) -> float:
    """Mean size of the landmarks' second difference over time: (T, 68, 2) -> pixels."""
    return float(np.linalg.norm(track[2:] - 2 * track[1:-1] + track[:-2], axis=-1).mean())


def test_smoothing_lowers_jitter_on_a_noisy_clip(tmp_path, aligner):
    """A real photo drifting slowly (known path) with per-frame sensor noise, through mp4 compression:
    smoothing must cut the frame-to-frame jitter and stay on the known path."""
    rng = np.random.default_rng(0)
    n, fps = 30, 25.0
    path = [(6.0 * np.sin(t / n * np.pi), 3.0 * t / n) for t in range(n)]
    frames = []
    for dx, dy in path:
        f = shifted(photo_bgr(), dx, dy).astype(np.float32) + rng.normal(0, 10, photo_bgr().shape)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    clip = write_clip(tmp_path / "noisy.mp4", frames, fps=fps)
    raw = [fr for fr in aligner.align_video(clip)]
    smooth = [fr.faces for fr in aligner.align_video(clip, smooth=True)]
    raw_lm = np.stack([fr.faces[0].landmarks_2d for fr in raw])
    smooth_lm = np.stack([fs[0].landmarks_2d for fs in smooth])
    j_raw, j_smooth = _jitter(raw_lm), _jitter(smooth_lm)
    assert j_raw > 0.2  # the noise does shake the raw predictions
    assert j_smooth < 0.5 * j_raw, (j_raw, j_smooth)
    truth = raw_lm.mean(0)[None] - np.mean(path, 0)[None, None] + np.array(path)[:, None, :]
    err_raw = np.linalg.norm(raw_lm - truth, axis=-1).mean()
    err_smooth = np.linalg.norm(smooth_lm - truth, axis=-1).mean()
    assert err_smooth < err_raw + 0.5, (err_raw, err_smooth)  # little lag on the slow drift
    # pose and mesh are smoothed with the landmarks
    yaw_raw = np.array([fr.faces[0].pose.yaw for fr in raw])
    yaw_smooth = np.array([fs[0].pose.yaw for fs in smooth])
    assert np.abs(np.diff(yaw_smooth, 2)).mean() < np.abs(np.diff(yaw_raw, 2)).mean()


def test_one_euro_filter():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    assert np.allclose(f(np.ones(3), 0.0, np.zeros(1)), 1.0)
    out = [f(np.zeros(3), t / 30, np.zeros(1)) for t in range(1, 60)]
    assert 0 < out[0][0] < 1 and out[-1][0] < 0.01  # a step decays, never overshoots
    fast = OneEuroFilter(min_cutoff=1.0, beta=50.0)
    slow = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    for t in range(10):  # a moving driver opens the cutoff: less lag
        x = np.array([float(t)])
        a, b = fast(x, t / 30, x), slow(x, t / 30, x)
    assert abs(a[0] - 9) < abs(b[0] - 9)


def test_tracks_keep_identity_for_two_faces(aligner):
    pair = np.hstack([photo_bgr(), photo_bgr()[:, ::-1]])
    for every in (1, 2):  # detection on every frame, and tracking between detections
        tracker = aligner.tracker(detect_every=every)
        ids = []
        for dx in (0, 4, 8, 12):
            faces = sorted(tracker(shifted(pair, dx, 0)), key=lambda f: f.box[0])
            ids.append([f.track_id for f in faces])
        assert all(i == ids[0] for i in ids) and len(set(ids[0])) == 2, (every, ids)


def test_empty_and_corrupt_videos(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(Trans3DHeadError, match=r"empty\.mp4: empty file"):
        open_video(empty)
    with pytest.raises(Trans3DHeadError, match=r"corrupt\.mp4: (not a readable video|no frame)"):
        list(iter_frames(corrupt))
    with pytest.raises(Trans3DHeadError, match="no such video"):
        open_video(tmp_path / "missing.mp4")
