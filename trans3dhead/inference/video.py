"""Videos: reading frames (files, cameras, streams), writing an annotated video, and smoothing
faces over time with a One-Euro filter (Casiez, Roussel and Vogel, "1 Euro Filter: a
simple speed-based low-pass filter for noisy input in interactive systems", CHI 2012).

The filter's cutoff rises with speed: still faces are smoothed hard (jitter falls), moving faces
lightly (little lag). Here one cutoff serves a whole face, driven by the mean speed of its
landmarks in face sizes per second, and is applied to every quantity of the face (landmarks,
camera matrix, shape and expression), so the mesh, pose and landmarks stay consistent.
"""
from __future__ import annotations

import math
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.fileio import AtomicOutput
from trans3dhead.inference.results import FaceResult

DEFAULT_FPS = 30.0  # when the container does not say


@dataclass
class VideoInfo:
    path: str
    fps: float
    frame_count: int  # as the container reports it (0 if unknown)
    width: int
    height: int


def is_live_source(source) -> bool:
    """A camera index (an int or a string of digits) or a stream URL (scheme://...), not a file."""
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        return True
    return isinstance(source, str) and (source.isdigit() or "://" in source)


def open_video(source) -> tuple[cv2.VideoCapture, VideoInfo]:
    """A video file, a camera index (0, "0") or any stream OpenCV can open (rtsp://, http://, ...)."""
    if is_live_source(source):
        return _open_live(source)
    p = Path(source)
    if not p.is_file():
        raise Trans3DHeadError(f"{p}: no such video file")
    if p.stat().st_size == 0:
        raise Trans3DHeadError(f"{p}: empty file (0 bytes); not a video")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise Trans3DHeadError(f"{p}: not a readable video (unknown container or corrupt data)")
    return cap, _capture_info(cap, str(p), max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)))


def _capture_info(cap: cv2.VideoCapture, name: str, frame_count: int) -> VideoInfo:
    fps = cap.get(cv2.CAP_PROP_FPS)
    return VideoInfo(name, fps if fps and math.isfinite(fps) and fps > 0 else DEFAULT_FPS, frame_count,
                     int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))


def probe_video(source) -> VideoInfo:
    """A source's VideoInfo without keeping it open. Files are opened and closed to read their
    frame rate and frame count; cameras and streams are not opened (a camera may refuse a second
    open; their frames carry their own times), so they get DEFAULT_FPS and no count."""
    if is_live_source(source):
        return VideoInfo(str(source), DEFAULT_FPS, 0, 0, 0)
    cap, info = open_video(source)
    cap.release()
    return info


def _open_live(source) -> tuple[cv2.VideoCapture, VideoInfo]:
    index = int(source) if not isinstance(source, str) or source.isdigit() else None
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our own one line says what failed
    try:
        cap = cv2.VideoCapture(index) if index is not None else cv2.VideoCapture(source)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not cap.isOpened():
        cap.release()
        what = f"camera {index}" if index is not None else f"stream {source}"
        raise Trans3DHeadError(f"{what}: cannot be opened (no such device, no permission, or unreachable)")
    return cap, _capture_info(cap, f"camera:{index}" if index is not None else str(source), 0)


def iter_frames(source) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time in seconds, (H, W, 3) uint8 BGR) for every frame; an error if there is none.
    Files: time = index / fps. Cameras and streams: seconds since the first frame (wall clock),
    until the source ends (or Ctrl-C)."""
    cap, info = open_video(source)
    live = is_live_source(source)
    try:
        index, start = 0, None
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if live:
                now = time.monotonic()
                start = now if start is None else start
                yield index, now - start, frame
            else:
                yield index, index / info.fps, frame
            index += 1
        if index == 0:
            raise Trans3DHeadError(f"{info.path}: no frame could be decoded (empty or corrupt video)")
    finally:
        cap.release()


def has_audio(path) -> bool:
    """True if a video file has an audio stream (asked of imageio-ffmpeg's bundled ffmpeg)."""
    import imageio_ffmpeg

    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True,
                           text=True, errors="replace", timeout=60)
    return any(" Audio: " in line for line in probe.stderr.splitlines() if "Stream #" in line)


class VideoSink(AtomicOutput):
    """An annotated video written to a temporary name and renamed by close().

    .mp4 / .mov / .mkv: H.264 (yuv420p, browsers play it) by the ffmpeg that imageio-ffmpeg ships,
    frames piped in; ``audio_from``: a source file whose audio track (if it has one) is kept,
    re-encoded as AAC. .avi: MJPG through OpenCV. The frame rate is the one given (the source's).
    """

    def __init__(self, path, fps: float, size: tuple[int, int], audio_from=None):
        super().__init__(path)
        self.size = (int(size[0]), int(size[1]))
        self._writer = self._proc = None
        if self.path.suffix.lower() == ".avi":
            self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, self.size)
            if not self._writer.isOpened():
                self.abort()
                raise Trans3DHeadError(f"{self.path}: cannot open an MJPG writer; use .mp4")
            return
        import imageio_ffmpeg

        w, h = self.size
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", f"{fps:.6g}", "-i", "-"]
        audio = audio_from is not None and has_audio(audio_from)
        if audio:
            cmd += ["-i", str(audio_from)]
        cmd += ["-map", "0:v:0"] + (["-map", "1:a:0", "-c:a", "aac", "-shortest"] if audio else ["-an"])
        cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
                "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(self.tmp)]
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

    def write(self, frame_bgr: np.ndarray) -> None:
        if self._writer is not None:
            self._writer.write(frame_bgr)
            return
        if frame_bgr.shape[1::-1] != self.size:
            raise Trans3DHeadError(f"{self.path}: frame of {frame_bgr.shape[1]}x{frame_bgr.shape[0]} px in a "
                                   f"{self.size[0]}x{self.size[1]} video")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame_bgr, np.uint8).tobytes())
        except BrokenPipeError:
            raise Trans3DHeadError(f"{self.path}: the video encoder stopped ({self._encoder_error()})") from None

    def _encoder_error(self) -> str:
        self._log.seek(0)
        lines = [ln for ln in self._log.read().decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1].strip() if lines else f"ffmpeg exit code {self._proc.poll()}"

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()
            if self._proc.wait() != 0:
                message = self._encoder_error()
                self.abort()
                raise Trans3DHeadError(f"{self.path}: the video encoder failed ({message})")
        super().close()

    def _release(self) -> None:
        if self._writer is not None:
            self._writer.release()
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdin and not self._proc.stdin.closed:
                try:
                    self._proc.stdin.close()
                except BrokenPipeError:
                    pass
            self._log.close()


class OneEuroFilter:
    """One-Euro filter of a vector x with one cutoff for all its elements, driven by the speed of a
    'driver' vector (in the driver's units per second).

    min_cutoff (Hz): the cutoff when still; lower = smoother, more lag.
    beta: how fast the cutoff rises with speed (Hz per driver unit per second).
    d_cutoff (Hz): the cutoff of the speed estimate itself.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 10.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x = self._driver = self._speed = self._t = None

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float, driver: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None or t <= self._t:
            self._x, self._driver, self._speed, self._t = x.copy(), driver.copy(), 0.0, t
            return x.copy()
        dt = t - self._t
        raw_speed = float(np.abs(driver - self._driver).mean()) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._speed = a_d * raw_speed + (1 - a_d) * self._speed
        a = self._alpha(self.min_cutoff + self.beta * self._speed, dt)
        self._x = a * x + (1 - a) * self._x
        self._driver, self._t = driver.copy(), t
        return self._x.copy()


def smooth_face(one_euro: OneEuroFilter, face: FaceResult, t: float) -> FaceResult:
    """One filter step for one face's track: landmarks, camera matrix, shape and expression move
    together (so mesh, pose and landmarks stay consistent), driven by the landmarks' speed in face
    sizes per second."""
    state = np.concatenate([face.landmarks_3d.ravel(), face.camera_matrix.ravel(), face.shape_params,
                            face.expression_params])
    size = float(face.crop_box[2] - face.crop_box[0])
    smooth = one_euro(state, t, face.landmarks_2d.ravel() / size)
    n = face.landmarks_3d.size
    return face.with_updates(landmarks_3d=smooth[:n].reshape(-1, 3), camera_matrix=smooth[n:n + 12].reshape(3, 4),
                             shape_params=smooth[n + 12:n + 52], expression_params=smooth[n + 52:])
