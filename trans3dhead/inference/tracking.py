"""Video and live input frame by frame: tracking instead of detecting every frame, and shot cuts.

FaceTracker takes frames one at a time. On the first frame, every ``detect_every`` frames, at a
shot cut and whenever a tracked face looks lost, the detector runs and new faces start tracks;
on the other frames each face's crop is taken from its previous landmarks with 3DDFA's landmark
policy (the one behind AFLW2000-3D's boxes, face_model.frames.roi_box_from_landmarks) and only
the network runs. Tracks never cross a shot cut: a cut ends every track and the next ids are new.

A tracked face is "lost" when the network's two answers disagree or its quality is low. The
landmark branch and the landmarks of the fitted 3DMM agree closely on real faces and not on crops
that slid off the face: LOST_DISAGREEMENT is the 98th percentile of the shipped default's gap on
the validation split of the AFLW crops (930 faces; inference/quality.py AGREEMENT_HALF, rederived
for each shipped default). And a tracked face whose quality (inference/quality.py: the face score
times a sharpness factor) is below LOST_QUALITY, the recommended min_quality, counts as lost
whatever min_quality the user set: on the shared clip's head tilted back at profile
(frames 339-417) the large model of attempt 11 tracked on with a wrong fit of quality 0.00-0.49
(scripts/measure_tracking_quality.py; docs/results.md, trans3dhead-large); attempt 15, shipped since,
does so on 4 frames without the rule (342-345, quality 0.05-0.36), none with it. A lost face triggers a detector run; if the detector finds
it, the track goes on from the detector's crop, otherwise it ends. Models without a landmark
branch (3ddfa-mb05) give neither signal; their tracks are checked by the periodic detection only.

Faces follow the aligner's min_quality as on still images: a detection below it starts no track,
and a tracked face below it counts as lost.

ShotCutDetector compares each frame's 64x36 grey thumbnail with the previous one: a cut is a
large change of the grey-level histogram together with a large mean pixel change.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.face_model.frames import roi_box_from_landmarks
from trans3dhead.inference.detectors.base import Detection
from trans3dhead.inference.images import load_image
from trans3dhead.inference.quality import AGREEMENT_HALF, RECOMMENDED_MIN_QUALITY, branch_disagreement
from trans3dhead.inference.results import FaceResult
from trans3dhead.inference.video import OneEuroFilter, smooth_face

# Branch disagreement (mean point distance, % of the crop side) above which a tracked face counts
# as lost: the 98th percentile of real faces on the validation split (see above), the same measured
# figure at which the quality's agreement factor is 0.5.
LOST_DISAGREEMENT = AGREEMENT_HALF
# Quality below which a tracked face counts as lost (a detector run decides), min_quality or not.
LOST_QUALITY = RECOMMENDED_MIN_QUALITY


class ShotCutDetector:
    """Cheap shot-cut test on consecutive frames (BGR uint8).

    hist_threshold: half the L1 distance of the 32-bin grey histograms (0 = same, 1 = disjoint).
    pixel_threshold: mean absolute grey change of the thumbnails, in grey levels (0..255).
    Both must be exceeded; the first frame is never a cut.
    """

    def __init__(self, hist_threshold: float = 0.35, pixel_threshold: float = 30.0, size=(64, 36)):
        self.hist_threshold, self.pixel_threshold, self.size = hist_threshold, pixel_threshold, size
        self._prev = None

    def scores(self, frame_bgr: np.ndarray) -> tuple[float, float]:
        """(histogram distance, mean pixel change) to the previous frame; (0, 0) for the first."""
        grey = cv2.cvtColor(cv2.resize(frame_bgr, self.size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        hist = np.bincount(grey.ravel() // 8, minlength=32).astype(np.float64) / grey.size
        prev, self._prev = self._prev, (grey.astype(np.float64), hist)
        if prev is None:
            return 0.0, 0.0
        return float(0.5 * np.abs(hist - prev[1]).sum()), float(np.abs(grey - prev[0]).mean())

    def __call__(self, frame_bgr: np.ndarray) -> bool:
        h, p = self.scores(frame_bgr)
        return h > self.hist_threshold and p > self.pixel_threshold

    def reset(self) -> None:
        self._prev = None


@dataclass
class _Track:
    track_id: int
    face: FaceResult
    det_score: float
    lost_frames: int = 0
    unmatched_detections: int = 0
    smoother: OneEuroFilter | None = field(default=None, repr=False)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    area_a, area_b = float(np.prod(a[2:] - a[:2])), float(np.prod(b[2:] - b[:2]))
    return inter / max(area_a + area_b - inter, 1e-9)


class FaceTracker:
    """Frames in one at a time (``faces = tracker(frame)``), faces with a track_id out.

    aligner: the HeadAligner whose detector and network are used.
    detect_every: run the detector at least every N frames; a new face is picked up within N
        frames. On a detector frame every face it finds is cropped by the detector, as on a still
        image, so detect_every=1 gives what detection on every frame gives, plus track ids.
    smooth: One-Euro filter each track (min_cutoff Hz, beta per face size per second; video.py).
    fps: frame rate used for time stamps when the caller gives none.
    shot_cuts: detect cuts (a ShotCutDetector, True for the default one, False for none).
    max_missed: for models without a landmark branch only, a tracked face that the detector fails
        to find this many detection rounds in a row ends. With a branch, a miss alone never ends a
        track (the detector loses some profile faces that the network still fits, e.g. a head
        tilted back at profile); a track ends when it looks lost and the detector does not find it.

    Counters for reports: ``frames``, ``detections`` (detector runs), ``cuts``.
    """

    def __init__(self, aligner, detect_every: int = 10, smooth: bool = False, min_cutoff: float = 1.0,
                 beta: float = 10.0, fps: float = 30.0, shot_cuts: bool | ShotCutDetector = True,
                 max_missed: int = 3):
        if detect_every < 1:
            raise Trans3DHeadError(f"detect_every={detect_every}: must be at least 1")
        self.aligner = aligner
        self.detect_every = detect_every
        self.smooth, self.filter_params = smooth, (min_cutoff, beta)
        self.fps = fps
        self.cut_detector = ShotCutDetector() if shot_cuts is True else (shot_cuts or None)
        self.max_missed = max_missed
        self.factor = aligner.disagreement_factor
        self.frames = self.detections = self.cuts = 0
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._since_detect = math.inf

    def reset(self) -> None:
        """End every track (as at a shot cut); the next frame is detected afresh."""
        self._tracks = []
        self._since_detect = math.inf
        if self.cut_detector is not None:
            self.cut_detector.reset()

    def __call__(self, frame, time_s: float | None = None, channels: str = "bgr") -> list[FaceResult]:
        image = load_image(frame, channels)[0]
        t = self.frames / self.fps if time_s is None else time_s
        self.frames += 1
        if self.cut_detector is not None and self.cut_detector(image):
            self.cuts += 1
            self._tracks = []
            self._since_detect = math.inf
        self._since_detect += 1
        if self._since_detect >= self.detect_every or not self._tracks:
            tracked = self._detect(image, self._tracks, followed=False)
        else:
            tracked = self._follow(image, self._tracks)
            if any(tr.lost_frames for tr in tracked):
                tracked = self._detect(image, tracked, followed=True)
        self._tracks = tracked
        return [self._output(tr, t) for tr in tracked]

    def _follow(self, image: np.ndarray, tracks: list[_Track]) -> list[_Track]:
        """Run the network on each track's landmark crop; mark the ones that look lost."""
        if not tracks:
            return []
        boxes = np.stack([roi_box_from_landmarks(tr.face.landmarks_2d) for tr in tracks])
        dets = [Detection(box=b, score=tr.det_score) for b, tr in zip(boxes, tracks)]
        lost_below = max(LOST_QUALITY, self.aligner.min_quality or 0.0)  # the stricter of the two
        for tr, face in zip(tracks, self.aligner.align_crops(image, boxes, dets)):
            tr.face = face
            lost = (self.factor is not None and branch_disagreement(face, self.factor) > LOST_DISAGREEMENT) \
                or (face.quality is not None and face.quality < lost_below)
            tr.lost_frames = tr.lost_frames + 1 if lost else 0
        return list(tracks)

    def _detect(self, image: np.ndarray, tracks: list[_Track], followed: bool) -> list[_Track]:
        """A detector run. A face the detector finds is cropped as on a still image (the detector's
        crop), keeping its track if it matches one; a track the detector misses goes on from its
        landmark crop unless it looks lost (or, without an agreement signal, after max_missed
        misses); new faces start tracks. followed: the tracks were already run on this frame."""
        self.detections += 1
        self._since_detect = 0
        dets = self.aligner.detector.detect(image)
        boxes = [self.aligner.detector.crop_box(d) for d in dets]
        where = [tr.face.crop_box if followed else roi_box_from_landmarks(tr.face.landmarks_2d) for tr in tracks]
        pairs = sorted(((_iou(b, w), j, k) for j, b in enumerate(boxes) for k, w in enumerate(where)), reverse=True)
        used, matched = set(), {}
        for v, j, k in pairs:
            if v < 0.3:
                break
            if j not in used and k not in matched:
                used.add(j)
                matched[k] = j
        found = [k for k in range(len(tracks)) if k in matched]
        missed = [tr for k, tr in enumerate(tracks) if k not in matched]
        if not followed:
            self._follow(image, missed)
        kept = []
        if found:
            faces = self.aligner.align_crops(image, np.stack([boxes[matched[k]] for k in found]),
                                             [dets[matched[k]] for k in found])
            for k, face in zip(found, faces):
                tr = tracks[k]
                tr.face, tr.lost_frames, tr.unmatched_detections = face, 0, 0
                tr.det_score = float(dets[matched[k]].score)
                if self.aligner.passes_quality(face):  # found again, but not face-like: the track ends
                    kept.append(tr)
        for tr in missed:
            tr.unmatched_detections += 1
            if tr.lost_frames:
                continue  # lost and not found: the track ends
            # A miss alone ends a track only where no agreement signal exists (3ddfa-mb05): the
            # detector loses some profile faces that the network still fits.
            if self.factor is None and tr.unmatched_detections >= self.max_missed:
                continue
            kept.append(tr)
        new = [j for j in range(len(dets)) if j not in used]
        if new:
            faces = self.aligner.align_crops(image, np.stack([boxes[j] for j in new]), [dets[j] for j in new])
            for j, face in zip(new, faces):
                if not self.aligner.passes_quality(face):  # below min_quality: as on a still image, no face
                    continue
                kept.append(_Track(self._next_id, face, float(dets[j].score)))
                self._next_id += 1
        kept.sort(key=lambda tr: tr.track_id)
        if self.aligner.max_faces is not None:
            kept = sorted(kept, key=lambda tr: -(tr.face.crop_box[2] - tr.face.crop_box[0]))[:self.aligner.max_faces]
        return kept

    def _output(self, tr: _Track, t: float) -> FaceResult:
        face = tr.face.with_updates(track_id=tr.track_id)
        if not self.smooth:
            return face
        if tr.smoother is None:
            tr.smoother = OneEuroFilter(*self.filter_params)
        return smooth_face(tr.smoother, face, t)
