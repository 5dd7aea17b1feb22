"""Video tracking on real frames: the shared 4K clip of a head turning to profile (downscaled
here), clips joined from it and a real photo (a shot cut), cameras that are not there, and the
H.264 output with the source's audio."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from conftest import DATA_ROOT
from test_inference_data import MODEL, photo_bgr

from trans3dhead import HeadAligner
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.inference.tracking import ShotCutDetector

CLIP = DATA_ROOT / "video" / "side_profile.mp4"
SIZE = (640, 414)  # the clip's 3456x2234 shrunk by 5.4


def _clip_frames(frame_indices: range) -> list[np.ndarray]:
    """Those frames of the clip (read in order from its start), 640 px wide."""
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    for i in range(frame_indices.stop):
        ok, frame = cap.read()
        assert ok, f"frame {i} of {CLIP} did not decode"
        if i in frame_indices:
            frames.append(cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA))
    cap.release()
    return frames


@pytest.fixture(scope="module")
def profile_frames() -> list[np.ndarray]:
    """Frames 0, 2, ..., 298 of the clip (turning from near-frontal to profile), 640 px wide."""
    return _clip_frames(range(0, 300, 2))


@pytest.fixture(scope="module")
def aligner():
    return HeadAligner(model=MODEL, threads=1)


def _photo_clip(n: int) -> list[np.ndarray]:
    """A slow zoom into the bundled photo, letterboxed to the clip's size (another real scene)."""
    h = SIZE[1]
    out = []
    for k in range(n):
        s = 1.0 + 0.004 * k
        img = cv2.resize(photo_bgr(), (round(h * s), round(h * s)), interpolation=cv2.INTER_AREA)[:h, :h]
        canvas = np.zeros((h, SIZE[0], 3), np.uint8)
        canvas[:, (SIZE[0] - h) // 2:(SIZE[0] - h) // 2 + h] = img
        out.append(canvas)
    return out


def test_tracking_follows_the_turn_to_profile(aligner, profile_frames):
    """One track through the whole turn, the detector run once every 10 frames, and the tracked
    landmarks close to what detection on that frame gives."""
    tracker = aligner.tracker(detect_every=10)
    tracked = [tracker(f) for f in profile_frames]
    assert all(len(faces) == 1 for faces in tracked)
    assert {faces[0].track_id for faces in tracked} == {0}
    assert tracker.detections == len(profile_frames) // 10 and tracker.cuts == 0
    gaps = []  # on the frames between detector runs (5, 15, ...), where the tracker crops alone
    for frame, faces in zip(profile_frames[5::10], tracked[5::10]):
        (detected,) = aligner(frame)
        side = detected.crop_box[2] - detected.crop_box[0]
        gaps.append(np.linalg.norm(faces[0].landmarks_2d - detected.landmarks_2d, axis=1).mean() / side * 100)
    # measured: median 2.2 %, largest 6.9 % of the crop side over the 150 frames (mostly at profile)
    assert np.median(gaps) < 4.0 and max(gaps) < 10.0, gaps


@pytest.fixture(scope="module")
def tilted_back_frames() -> list[np.ndarray]:
    """Frames 260-419 of the clip, 640 px wide: at profile, then the head tilted far back."""
    return _clip_frames(range(260, 420))


def test_a_tracked_face_of_low_quality_counts_as_lost(tilted_back_frames, monkeypatch):
    """A head tilted far back at profile (frames ~340-400) can stay in its landmark crops with a
    wrong fit that the face score rates low; the tracker treats quality below LOST_QUALITY as lost
    (the detector, finding nothing there, ends the track) even with min_quality off. The large model
    of attempt 11 did so on 67 frames with the rule off; on this test's 640-px frames attempt 15
    (shipped 2026-12-07) on none (its 91 frames with a face all at quality >= 0.97; on the 4K clip 4,
    scripts/measure_tracking_quality.py), the default on one (0.375), so the default checks the rule."""
    import trans3dhead.inference.tracking as tracking

    aligner = HeadAligner(threads=1)
    assert aligner.min_quality is None and tracking.LOST_QUALITY == 0.5

    def run():
        tracker = aligner.tracker(detect_every=10)
        return [tracker(f) for f in tilted_back_frames]

    faces = run()
    assert not [i for i, fs in enumerate(faces) if any(f.quality < 0.5 for f in fs)]
    assert sum(bool(fs) for fs in faces[:60]) == 60  # frames 260-319, upright at profile: tracked
    monkeypatch.setattr(tracking, "LOST_QUALITY", 0.0)
    assert sum(any(f.quality < 0.5 for f in fs) for fs in run()) >= 1


def test_profile_pose_reads_a_nod_as_pitch_on_the_real_clip(aligner, profile_frames):
    """Frames 60-240 of the clip: an upright head at full profile. The exact Euler split of the
    network's rotation puts tens of degrees into pitch and roll of opposite sign (the issue saw
    yaw 87, pitch -80, roll -87); the reported angles keep roll near 0 and pitch small, and both
    rebuild rotations within about 5 degrees of each other (the size of the network's own pose
    error at profile; face_model/pose.py euler_near_profile; the clip plotted in docs/profile_pose.png)."""
    from trans3dhead.face_model.frames import FLIP_Y
    from trans3dhead.face_model.pose import euler_from_rotation, rotation_from_euler, split_pose

    tracker = aligner.tracker(detect_every=10)
    faces = [tracker(f)[0] for f in profile_frames[30:121]]
    reported = np.array([f.pose.angles for f in faces])
    exact = np.degrees(np.array([euler_from_rotation(split_pose(FLIP_Y @ f.camera_matrix)[1]) for f in faces]))
    assert np.median(np.abs(reported[:, 0])) > 80  # at profile
    assert np.median(np.abs(exact[:, 2])) > 45 and np.median(np.abs(exact[:, 1])) > 45  # the arbitrary split
    # measured: |roll| median 0.9 / 0.4 deg, |pitch| median 11 / 11 deg (attempt 7 / 8; the head is slightly raised)
    assert np.median(np.abs(reported[:, 2])) < 5 and np.median(np.abs(reported[:, 1])) < 20
    gap = [np.degrees(np.arccos(np.clip((np.trace(rotation_from_euler(*np.radians(r)).T @ f.pose.rotation) - 1) / 2,
                                        -1, 1))) for r, f in zip(reported, faces)]
    # measured: median 5.1 / 5.9, 95th percentile 12.0 / 15.1 deg with the attempt-7 / attempt-8
    # weights (the roll prior outweighs that much rotation)
    assert np.median(gap) < 7.0 and np.percentile(gap, 95) < 18.0, gap


def test_visibility_hides_the_far_side_at_profile_on_the_real_clip(aligner, profile_frames):
    """The shipped visibility head on real frames: at full profile (frames 60-240, yaw ~ +90) the
    far side's jaw (0-7), eye (36-41) and brow (17-21) are hidden and the near side's seen; on the
    near-frontal first frames almost every point is visible. Measured: far side 0 % visible, near
    jaw 81 %, near eye 83 %, near brow 100 %; 96 % of all points on the first frames (yaw 22-25)."""
    at_profile = np.array([aligner(f)[0].visible for f in profile_frames[30:121:6]]).mean(0)
    assert at_profile[0:8].mean() < 0.1 and at_profile[36:42].mean() < 0.1 and at_profile[17:22].mean() < 0.1
    assert at_profile[9:17].mean() > 0.6 and at_profile[42:48].mean() > 0.6 and at_profile[22:27].mean() > 0.8
    frontal = np.mean([aligner(f)[0].visible.mean() for f in profile_frames[:3]])
    assert frontal > 0.85


def test_detect_every_frame_gives_what_still_images_give(aligner, profile_frames):
    """detect_every=1: the detector crops every face, so the landmarks are those of aligner(frame)."""
    every = aligner.tracker(detect_every=1)
    for frame in profile_frames[:30]:
        (tracked,) = every(frame)
        (still,) = aligner(frame)
        np.testing.assert_allclose(tracked.landmarks_3d, still.landmarks_3d, atol=1e-6)
        assert tracked.track_id == 0
    assert every.detections == 30


def test_no_cut_inside_the_clip_and_one_cut_where_clips_join(aligner, profile_frames):
    detector = ShotCutDetector()
    assert not any(detector(f) for f in profile_frames)  # a head turning is not a cut
    joined = profile_frames[:30] + _photo_clip(30) + profile_frames[30:60]
    detector.reset()
    cuts = [i for i, f in enumerate(joined) if detector(f)]
    assert cuts == [30, 60]
    tracker = aligner.tracker(detect_every=10)
    ids = [[f.track_id for f in tracker(frame)] for frame in joined]
    assert tracker.cuts == 2
    before, photo, after = (set(sum(ids[a:b], [])) for a, b in ((0, 30), (30, 60), (60, 90)))
    assert before and photo and after
    assert not (before & photo) and not (photo & after) and not (before & after)  # no track crosses a cut


def test_a_new_face_is_picked_up_within_detect_every_frames(aligner):
    """A second face appears in frame 3: with detect_every=5 it is found by frame 5 at the latest."""
    one = np.hstack([photo_bgr(), np.zeros_like(photo_bgr())])
    two = np.hstack([photo_bgr(), photo_bgr()[:, ::-1]])
    tracker = aligner.tracker(detect_every=5, shot_cuts=False)
    counts = [len(tracker(one if k < 3 else two)) for k in range(8)]
    assert counts[:3] == [1, 1, 1] and counts[5:] == [2, 2, 2], counts


def test_frames_one_at_a_time_from_python(aligner, profile_frames):
    tracker = aligner.tracker()
    rgb = [f[:, :, ::-1] for f in profile_frames[:3]]
    faces = [tracker(f, channels="rgb") for f in rgb]
    assert [len(f) for f in faces] == [1, 1, 1] and faces[2][0].track_id == 0
    with pytest.raises(Trans3DHeadError, match="detect_every"):
        aligner.tracker(detect_every=0)


def test_a_missing_camera_is_one_line(tmp_path, aligner):
    with pytest.raises(Trans3DHeadError, match="camera 7: cannot be opened"):
        next(aligner.align_video(7))
    proc = subprocess.run([sys.executable, "-m", "trans3dhead", "predict", "--camera", "7", "-o", str(tmp_path),
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["trans3dhead: error: camera 7: cannot be opened (no such device, "
                                                "no permission, or unreachable)"], proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def _streams(path) -> list[str]:
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True,
                           text=True)
    return [ln.strip() for ln in probe.stderr.splitlines() if "Stream #" in ln]


def test_rendered_video_is_h264_with_the_source_audio(tmp_path):
    """The first 0.4 s of the real clip, with its AAC audio, shrunk to 640 px: the overlay video is
    H.264 yuv420p at the source's 60 fps, one frame per input frame, and keeps an audio track."""
    src = tmp_path / "clip.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-t", "0.4", "-i",
                    str(CLIP), "-vf", "scale=640:-2", "-c:v", "libx264", "-c:a", "copy", str(src)], check=True,
                   timeout=300)
    assert any("Audio" in s for s in _streams(src))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "trans3dhead", "predict", str(src), "-o", str(out), "--render",
                           "--smooth", "--quiet", "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    streams = _streams(out / "clip_overlay.mp4")
    assert any("Video: h264" in s and "yuv420p" in s and "60 fps" in s for s in streams), streams
    assert any("Audio: aac" in s for s in streams), streams
    n_in = sum(1 for _ in open(out / "clip.jsonl"))
    cap = cv2.VideoCapture(str(out / "clip_overlay.mp4"))
    n_out = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert n_in == n_out >= 20
    doc = json.loads(open(out / "clip.jsonl").readline())
    assert doc["detect_every"] == 10 and doc["faces"][0]["track_id"] == 0
