"""Video speed side by side, one CPU core: trans3dhead against MediaPipe FaceMesh on the same real
frames in the same run, plus the documented `trans3dhead predict CLIP --smooth --render` example
and photos per second.

trans3dhead rows: the default tracking (`aligner.tracker(detect_every=10)`), the tracker with the
detector on every frame (detect_every=1), and no tracking at all (`aligner.align(frame)` on every
frame, every crop from the detector: the reference for the faces that tracking must keep finding).

Clips, made once from ../shared/data/video/side_profile.mp4 (4K, 60 fps, one person turning to
profile) and cached in --work-dir:
  (a) the clip shrunk to 640 px wide (aspect kept: 640x414), its first --frames frames;
  (b) a composited multi-face clip: a 2x2 tile (1280x828) of four time-shifted copies of the
      shrunk clip, offsets spread over the whole clip, so every frame holds 4 real faces, some of
      them at profile or tilted back.
Frames are decoded once into memory before any timing (decode time is excluded; the CLI row
alone decodes its own input, as a user's run does).

MediaPipe 0.10.21 (the last release shipping its FaceMesh models) pins numpy<2 and protobuf 4, so
it lives in its own virtual environment (--mediapipe-venv, created with `python -m venv` + `pip
install mediapipe==0.10.21` when it lacks it) and runs in a subprocess of that venv: this same
file started with --worker, fed the same decoded frames through .npy files.

One thread: the whole run (this process, the MediaPipe worker, the CLI and the ffmpeg encoders
they start) is pinned to one CPU core (--cpu; os.sched_setaffinity), and trans3dhead, OpenCV and
torch are set to one thread. MediaPipe's legacy solution API has no thread setting; the pinning
holds its threads to the core. Each figure is the median of --repeats runs, the rows interleaved
within each repeat so that a change of machine load touches every row alike.

    python benchmarks/bench_video.py                       # the committed table
    python benchmarks/bench_video.py --frames 30 --repeats 1 --n-photos 10 --out /tmp/bench_smoke

Writes OUT.md (default benchmarks/results/bench_video.md) and the raw figures as WORK_DIR/bench_video.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEDIAPIPE_VERSION = "0.10.21"
TILE = 2  # the multi-face clip is a TILE x TILE grid of copies
WARMUP_FRAMES = 10  # run untimed on a separate tracker / FaceMesh first: sessions, caches, graph start


# --------------------------------------------------------------------------- MediaPipe worker
def mediapipe_worker() -> int:
    """Runs inside the MediaPipe venv: one JSON command per stdin line, one JSON answer per line
    on the original stdout (MediaPipe's own prints are sent to stderr)."""
    import numpy as np

    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    import mediapipe as mp

    answers.write(json.dumps({"mediapipe": mp.__version__, "numpy": np.__version__}) + "\n")
    answers.flush()
    loaded = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        key = (cmd["frames"], cmd["split"])
        if key not in loaded:  # BGR (as OpenCV decodes) -> RGB (what MediaPipe takes), tiles cut out: untimed
            data = np.load(cmd["frames"])
            arrays = [data] if isinstance(data, np.ndarray) else [data[k] for k in sorted(data.files)]
            frames = [f[..., ::-1] for a in arrays for f in (a if a.ndim == 4 else a[None])]
            loaded[key] = [[np.ascontiguousarray(t) for t in _tiles(f, cmd["split"])] for f in frames]
        frames = loaded[key]
        options = dict(static_image_mode=cmd["static"], max_num_faces=cmd["max_faces"], refine_landmarks=False,
                       min_detection_confidence=0.5, min_tracking_confidence=0.5)
        n_streams = len(frames[0])
        meshes = [mp.solutions.face_mesh.FaceMesh(**options) for _ in range(n_streams)]
        for s, warm in enumerate(meshes):
            for f in frames[:WARMUP_FRAMES]:
                warm.process(f[s])
            warm.close()
        meshes = [mp.solutions.face_mesh.FaceMesh(**options) for _ in range(n_streams)]  # fresh: no track state
        counts = []
        t0, c0 = time.perf_counter(), time.process_time()
        for f in frames:
            counts.append(sum(len(m.process(t).multi_face_landmarks or []) for m, t in zip(meshes, f)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        for m in meshes:
            m.close()
        answers.write(json.dumps({"wall_s": wall, "cpu_s": cpu, "counts": counts}) + "\n")
        answers.flush()
    return 0


def _tiles(frame, split: int) -> list:
    """The frame itself (split 1) or its split x split tiles, row by row."""
    h, w = frame.shape[0] // split, frame.shape[1] // split
    return [frame[r * h:(r + 1) * h, c * w:(c + 1) * w] for r in range(split) for c in range(split)]


class MediaPipe:
    """The worker process, started once from the MediaPipe venv."""

    def __init__(self, venv: Path, log: Path):
        python = ensure_mediapipe_venv(venv)
        env = dict(os.environ, GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="2", PYTHONNOUSERSITE="1")
        env.pop("PYTHONPATH", None)
        self._log = open(log, "w")
        self.proc = subprocess.Popen([str(python), str(Path(__file__).resolve()), "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, text=True, env=env)
        self.versions = self._answer()

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the MediaPipe worker stopped (exit code {self.proc.poll()}); see {self._log.name}")
        return json.loads(line)

    def run(self, frames_file: Path, max_faces: int, static: bool = False, split: int = 1) -> dict:
        """FaceMesh over the frames; split > 1: one FaceMesh per tile of a split x split grid, each
        fed its own tile (MediaPipe told where the faces are), faces summed per frame."""
        cmd = {"frames": str(frames_file), "max_faces": max_faces, "static": static, "split": split}
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self._log.close()


def ensure_mediapipe_venv(venv: Path) -> Path:
    """The venv's python, with mediapipe==0.10.21 installed into it first if it is not there."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import mediapipe, sys; sys.exit(mediapipe.__version__ != sys.argv[1])",
             MEDIAPIPE_VERSION]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating {venv} with mediapipe=={MEDIAPIPE_VERSION} (once; about a minute)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"mediapipe=={MEDIAPIPE_VERSION}"], check=True)
    subprocess.run(probe, check=True)
    return python


# --------------------------------------------------------------------------- clips
def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def shrink_clip(source: Path, work: Path, width: int) -> tuple[Path, float]:
    """The whole source shrunk to width px (aspect kept; H.264 crf 18, audio kept, one output frame
    per input frame), made once in work; (its path, its frame rate)."""
    from trans3dhead.inference.video import open_video

    small = work / f"{source.stem}_{width}w.mp4"
    if not small.exists():
        print(f"shrinking {source} to {width} px wide (once) ...", file=sys.stderr)
        ffmpeg("-i", str(source), "-vf", f"scale={width}:-2:flags=area", "-fps_mode", "passthrough",
               "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac",
               str(small.with_suffix(".part.mp4")))
        small.with_suffix(".part.mp4").rename(small)
    cap, info = open_video(small)
    cap.release()
    return small, info.fps


def cut_clip(small: Path, n_frames: int, fps: float) -> Path:
    """The shrunk clip's first n_frames with their audio, re-encoded (made once, beside it)."""
    clip = small.with_name(f"{small.stem}_first{n_frames}.mp4")
    if not clip.exists():
        ffmpeg("-i", str(small), "-frames:v", str(n_frames), "-t", f"{n_frames / fps:.6f}", "-fps_mode",
               "passthrough", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
               "-c:a", "aac", str(clip.with_suffix(".part.mp4")))
        clip.with_suffix(".part.mp4").rename(clip)
    return clip


def decode(path: Path, n_frames: int | None = None):
    """Every frame (BGR uint8, stacked) as OpenCV decodes it, as predict reads videos."""
    import numpy as np

    from trans3dhead.inference.video import iter_frames

    frames = np.stack([f for _, _, f in iter_frames(path)])
    if n_frames is not None and len(frames) != n_frames:
        raise RuntimeError(f"{path}: {len(frames)} frames decoded, {n_frames} wanted; delete it and rerun")
    return frames


def tile_clip(every, n_frames: int):
    """TILE x TILE copies of the shrunk clip, each n_frames long, start offsets spread evenly over
    the whole clip: (n_frames, TILE*H, TILE*W, 3) and the offsets."""
    import numpy as np

    k = TILE * TILE
    offsets = [round(i * (len(every) - n_frames) / (k - 1)) for i in range(k)]
    rows = [np.concatenate([every[offsets[r * TILE + c]:offsets[r * TILE + c] + n_frames] for c in range(TILE)], 2)
            for r in range(TILE)]
    return np.ascontiguousarray(np.concatenate(rows, 1)), offsets


# --------------------------------------------------------------------------- trans3dhead rows
def usage_s() -> float:
    """CPU seconds of this process plus its finished, waited-for children (ffmpeg, the CLI)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_tracker(aligner, frames, detect_every: int, fps: float) -> dict:
    """A fresh tracker over every frame (align_video's loop without the decode)."""
    warm = aligner.tracker(detect_every=detect_every, fps=fps)
    for f in frames[:WARMUP_FRAMES]:
        warm(f)
    tracker = aligner.tracker(detect_every=detect_every, smooth=False, fps=fps)
    out = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i, f in enumerate(frames):
        out.append(tracker(f, i / fps))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall_s": wall, "cpu_s": cpu, "counts": [len(x) for x in out], "detector_runs": tracker.detections,
            "faces": [[(f.landmarks_2d.copy(), float(f.crop_box[2] - f.crop_box[0])) for f in x] for x in out]}


def run_per_frame_detection(aligner, frames) -> dict:
    """No tracking: `aligner.align(frame)` on every frame, crops from the detector's boxes (what
    trans3dhead did before tracking; no track ids)."""
    for f in frames[:WARMUP_FRAMES]:
        aligner.align(f)
    out = []
    t0, c0 = time.perf_counter(), time.process_time()
    for f in frames:
        out.append(aligner.align(f))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall_s": wall, "cpu_s": cpu, "counts": [len(x) for x in out], "detector_runs": len(frames),
            "faces": [[(f.landmarks_2d.copy(), float(f.crop_box[2] - f.crop_box[0])) for f in x] for x in out]}


def run_smooth_render_loop(aligner, frames, fps: float, clip: Path, out_dir: Path) -> dict:
    """What `predict CLIP --smooth --render` does per frame, decode excluded: tracking with One-Euro
    smoothing, the JSON Lines document, the default overlay and the H.264 (+ audio) writer."""
    from trans3dhead.inference import writers
    from trans3dhead.inference.render import DEFAULT_STYLES, render_overlay
    from trans3dhead.inference.video import VideoSink

    h, w = frames.shape[1:3]
    parts = dict.fromkeys(("track", "json", "render", "write"), 0.0)
    info = {"model": aligner.model_name, "backend": aligner.backend_name, "fps": fps, "detect_every": 10}
    t0, u0 = time.perf_counter(), usage_s()
    tracker = aligner.tracker(detect_every=10, smooth=True, min_cutoff=1.0, beta=10.0, fps=fps)
    lines = writers.JsonLinesWriter(out_dir / "loop.jsonl")
    sink = VideoSink(out_dir / "loop_overlay.mp4", fps, (w, h), audio_from=clip)
    n_faces = 0
    for i, f in enumerate(frames):
        a = time.perf_counter()
        faces = tracker(f, i / fps)
        b = time.perf_counter()
        lines.write(writers.image_document(str(clip), (w, h), faces, info, frame_index=i, time_s=i / fps))
        c = time.perf_counter()
        overlay = render_overlay(f, faces, DEFAULT_STYLES)
        d = time.perf_counter()
        sink.write(overlay)
        e = time.perf_counter()
        for key, dt in zip(parts, (b - a, c - b, d - c, e - d)):
            parts[key] += dt
        n_faces += len(faces)
    lines.close()
    c = time.perf_counter()
    sink.close()  # the encoder finishes the last frames and muxes the audio
    parts["write"] += time.perf_counter() - c
    return {"wall_s": time.perf_counter() - t0, "cpu_s": usage_s() - u0, "faces": n_faces, "parts": parts}


def run_cli(clip: Path, out_dir: Path, n_frames: int) -> dict:
    """The documented example, end to end (start-up, decode, everything), at --threads 1."""
    cmd = [sys.executable, "-m", "trans3dhead", "predict", str(clip), "-o", str(out_dir), "--smooth", "--render",
           "--threads", "1", "--quiet"]
    t0, u0 = time.perf_counter(), usage_s()
    subprocess.run(cmd, check=True)
    wall, cpu = time.perf_counter() - t0, usage_s() - u0
    docs = [json.loads(x) for x in (out_dir / f"{clip.stem}.jsonl").read_text().splitlines()]
    if len(docs) != n_frames or not (out_dir / f"{clip.stem}_overlay.mp4").stat().st_size:
        raise RuntimeError(f"{out_dir}: predict wrote {len(docs)} of {n_frames} frames or no overlay video")
    return {"wall_s": wall, "cpu_s": cpu, "faces": sum(len(d["faces"]) for d in docs)}


def run_photos(aligner, images) -> dict:
    for img in images[:3]:
        aligner.align(img)
    t0, c0 = time.perf_counter(), time.process_time()
    counts = [len(aligner.align(img)) for img in images]
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "counts": counts}


# --------------------------------------------------------------------------- comparison
def _bbox(lm):
    return (*lm.min(0), *lm.max(0))


def _iou(a, b) -> float:
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = max(iw, 0) * max(ih, 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


def compare_to_every_frame(tracked: list, detected: list) -> dict:
    """Per frame, the faces of detection on every frame matched to the tracked faces (landmark
    boxes, IoU >= 0.3, greedy): how many detection finds, how many tracking finds too, how many
    tracking finds that detection does not, and the matched faces' mean landmark gap (% of the
    crop side)."""
    import numpy as np

    found = matched = extra = 0
    gaps = []
    for tr, de in zip(tracked, detected):
        pairs = sorted(((_iou(_bbox(a[0]), _bbox(b[0])), i, j) for i, a in enumerate(tr) for j, b in enumerate(de)),
                       reverse=True)
        used_t, used_d = set(), set()
        for v, i, j in pairs:
            if v >= 0.3 and i not in used_t and j not in used_d:
                used_t.add(i)
                used_d.add(j)
                gaps.append(100 * np.linalg.norm(tr[i][0] - de[j][0], axis=1).mean() / de[j][1])
        found += len(de)
        matched += len(used_d)
        extra += len(tr) - len(used_t)
    return {"detected": found, "tracked": sum(len(t) for t in tracked), "matched": matched, "tracking_only": extra,
            "median_gap_pct": float(np.median(gaps)) if gaps else float("nan")}


def median_row(reps: list[dict], n: int) -> dict:
    """Median wall and CPU frames per second over the repeats (n frames or images each)."""
    fps = [n / r["wall_s"] for r in reps]
    return {"per_s": statistics.median(fps), "min": min(fps), "max": max(fps),
            "per_cpu_s": statistics.median(n / r["cpu_s"] for r in reps),
            "wall_s": statistics.median(r["wall_s"] for r in reps)}


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--clip", default=str(ROOT.parent / "shared/data/video/side_profile.mp4"))
    ap.add_argument("--frames", type=int, default=300, help="frames per clip (default 300: 5 s at 60 fps)")
    ap.add_argument("--width", type=int, default=640, help="width the clip is shrunk to (aspect kept)")
    ap.add_argument("--photos", default=str(ROOT.parent / "shared/data/aflw2000_3d/images"))
    ap.add_argument("--n-photos", type=int, default=100, help="photos (sorted by name); 0: no photo rows")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per row; the table gives medians")
    ap.add_argument("--cpu", type=int, default=0, help="the CPU core the whole run is pinned to (-1: no pinning)")
    ap.add_argument("--mediapipe-venv", default="/tmp/mp_venv")
    ap.add_argument("--work-dir", default="/tmp/trans3dhead_bench_video", help="cached clips, frames, outputs")
    ap.add_argument("--no-cli", action="store_true", help="skip the end-to-end `predict --smooth --render` row")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/bench_video"), help="OUT.md is written")
    args = ap.parse_args(argv)
    if args.worker:
        return mediapipe_worker()
    command = "python benchmarks/bench_video.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})  # before any library starts a thread; children inherit it
    import cv2
    import numpy as np
    import onnxruntime
    import torch

    import trans3dhead
    from trans3dhead.fileio import atomic_write_text
    from trans3dhead.inference import HeadAligner
    from trans3dhead.inference.images import IMAGE_SUFFIXES

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    run_t0 = time.perf_counter()
    started = datetime.now(timezone.utc)

    small, fps = shrink_clip(Path(args.clip), work, args.width)
    clip_a = cut_clip(small, args.frames, fps)
    clip_1 = cut_clip(small, 1, fps)  # the CLI's start-up and fixed costs: its run on one frame
    every, frames_a = decode(small), decode(clip_a, args.frames)
    frames_b, offsets = tile_clip(every, args.frames)
    n_all = len(every)
    del every
    np.save(work / "frames_a.npy", frames_a)
    np.save(work / "frames_b.npy", frames_b)
    paths = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:args.n_photos] \
        if args.n_photos else []
    photos = [cv2.imread(str(p)) for p in paths]
    if photos:
        np.savez(work / "photos.npz", **{f"{i:05d}": im for i, im in enumerate(photos)})

    mediapipe = MediaPipe(Path(args.mediapipe_venv), work / "mediapipe_worker.log")
    aligner = HeadAligner(threads=1)  # default model, detector, backend (onnx) and batch size
    clips = {"a": (frames_a, work / "frames_a.npy", 1), "b": (frames_b, work / "frames_b.npy", TILE * TILE)}
    rows: dict[str, list[dict]] = {}
    try:
        for rep in range(args.repeats):
            print(f"repeat {rep + 1} of {args.repeats}", file=sys.stderr)
            for name, (frames, npy, people) in clips.items():
                for every_n in (10, 1):
                    rows.setdefault(f"{name}/t3dh/{every_n}", []).append(run_tracker(aligner, frames, every_n, fps))
                rows.setdefault(f"{name}/t3dh/align", []).append(run_per_frame_detection(aligner, frames))
                rows.setdefault(f"{name}/mp", []).append(mediapipe.run(npy, max_faces=people))
                if people > 1:
                    rows.setdefault(f"{name}/mp/tiles", []).append(mediapipe.run(npy, max_faces=1, split=TILE))
            if photos:
                rows.setdefault("photos/t3dh", []).append(run_photos(aligner, photos))
                rows.setdefault("photos/mp", []).append(mediapipe.run(work / "photos.npz", max_faces=1, static=True))
            loop_dir = work / f"loop_out_{rep}"
            loop_dir.mkdir(exist_ok=True)
            rows.setdefault("render/loop", []).append(run_smooth_render_loop(aligner, frames_a, fps, clip_a, loop_dir))
            if not args.no_cli:
                rows.setdefault("render/cli", []).append(run_cli(clip_a, work / f"cli_out_{rep}", args.frames))
                rows.setdefault("render/cli1", []).append(run_cli(clip_1, work / f"cli1_out_{rep}", 1))
    finally:
        mediapipe.close()
    load_after = os.getloadavg()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "trans3dhead"], capture_output=True,
                           text=True).stdout.split("\n")
    dirty = [ln[3:] for ln in dirty if ln.strip()]
    code = f"code at commit {head or 'unknown'}" + (f" with uncommitted changes to {', '.join(dirty)}" if dirty else "")
    took = time.perf_counter() - run_t0

    # ---- the table
    n = args.frames
    h_a, w_a = frames_a.shape[1:3]
    h_b, w_b = frames_b.shape[1:3]
    varied = [k for k, reps in rows.items()
              if "counts" in reps[0] and any(r["counts"] != reps[0]["counts"] for r in reps)]
    stats = {}
    for key, reps in rows.items():
        stats[key] = median_row(reps, len(photos) if key.startswith("photos") else 1 if key == "render/cli1" else n)
        first = reps[0]
        stats[key]["found"] = sum(first["counts"]) if "counts" in first else first["faces"]
        stats[key]["faces_per_s"] = stats[key]["found"] / stats[key]["wall_s"]
    cmp = {(c, ref): compare_to_every_frame(rows[f"{c}/t3dh/10"][0]["faces"], rows[f"{c}/t3dh/{ref}"][0]["faces"])
           for c in clips for ref in ("align", "1")}
    cpu_name = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                     if ln.startswith("model name")), platform.processor())
    mp_name = f"MediaPipe FaceMesh {mediapipe.versions['mediapipe']}"

    def fmt(st):
        return f"{st['per_s']:.1f} ({st['min']:.1f}-{st['max']:.1f})"

    def ratio(a: str, b: str) -> str:
        fa, fb = stats[a]["faces_per_s"], stats[b]["faces_per_s"]
        return f"{fa / fb:.2f}x" if fb > 0 else "no MediaPipe face to compare with"

    L = ["# Video speed: trans3dhead against MediaPipe FaceMesh, one CPU core", "",
         f"Measured {started:%Y-%m-%d %H:%M} UTC on {cpu_name} ({os.cpu_count()} cores; the whole run pinned to "
         f"{'core ' + str(args.cpu) if args.cpu >= 0 else 'no core'}), 1-min load average "
         f"{load_before[0]:.2f} before and {load_after[0]:.2f} after; trans3dhead {trans3dhead.__version__} "
         f"(default model `{aligner.model_name}`, backend {aligner.backend_name}, "
         f"onnxruntime {onnxruntime.__version__}), "
         f"{mp_name} (numpy {mediapipe.versions['numpy']}, its own venv); {code}; the whole run took "
         f"{took / 60:.1f} min. "
         f"Medians of {args.repeats} interleaved runs, range in brackets. One run on one machine: "
         "differences of a few percent are noise; any other process on the machine slows every row.", "",
         f"Command: `{command.strip()}`", "",
         f"- Clip (a): `side_profile.mp4` (4K, 60 fps, one person turning to profile) shrunk to {w_a}x{h_a} "
         f"(aspect kept, H.264 crf 18), its first {n} frames.",
         f"- Clip (b), **composited**: a 2x2 tile ({w_b}x{h_b}) of four time-shifted copies of the shrunk "
         f"clip (start frames {', '.join(map(str, offsets))} of {n_all}), {n} frames, 4 real faces in "
         "every frame, some at profile or tilted back.",
         "- Frames decoded once into memory before timing: decode time is excluded (only the CLI row decodes, "
         "its own input, as a user's run does). Model loading and a 10-frame warm-up on a separate tracker or "
         "FaceMesh are excluded.",
         "- trans3dhead: `HeadAligner(threads=1)` with its defaults, `tracker = aligner.tracker(detect_every=N)`, "
         "`tracker(frame)` per frame. MediaPipe: the legacy `solutions.face_mesh.FaceMesh(static_image_mode=False, "
         "max_num_faces=K)`, K = the people in the clip (its most favourable setting), refine_landmarks off, "
         "confidences 0.5, RGB frames.",
         "- face-frames found: faces reported, summed over frames. frames per CPU-s: what an otherwise idle "
         "core gives.", "",
         "| clip | method | setting | frames/s | faces/s | face-frames found | frames per CPU-s | detector runs |",
         "|---|---|---|---|---|---|---|---|"]
    for c, label in (("a", f"(a) {w_a}x{h_a}, 1 face"), ("b", f"(b) {w_b}x{h_b}, 4 faces, composited")):
        people = clips[c][2]
        entries = [(f"{c}/t3dh/10", "trans3dhead", "tracking, detect_every=10 (default)"),
                   (f"{c}/t3dh/1", "trans3dhead", "tracking, detect_every=1 (detector on every frame)"),
                   (f"{c}/t3dh/align", "trans3dhead", "no tracking: `aligner.align(frame)`, crops from the "
                                                      "detector on every frame"),
                   (f"{c}/mp", mp_name, f"max_num_faces={people}")]
        if f"{c}/mp/tiles" in stats:
            entries.append((f"{c}/mp/tiles", mp_name, "told where the faces are: one FaceMesh per tile, each fed "
                                                       "its own 640x414 tile, max_num_faces=1"))
        for key, method, setting in entries:
            st = stats[key]
            L.append(f"| {label} | {method} | {setting} | {fmt(st)} | {st['faces_per_s']:.1f} | {st['found']} of "
                     f"{n * people} | {st['per_cpu_s']:.1f} | {rows[key][0].get('detector_runs', '')} |")
    L += ["", f"faces/s, trans3dhead default over MediaPipe: (a) {ratio('a/t3dh/10', 'a/mp')}, "
          f"(b) {ratio('b/t3dh/10', 'b/mp')}; over MediaPipe fed the tiles: {ratio('b/t3dh/10', 'b/mp/tiles')}.",
          "", "Tracking (detect_every=10) against detection on every frame, on the same frames; faces matched per "
          "frame by the IoU of their landmark boxes >= 0.3. With detect_every=1 the tracker runs the detector on "
          "every frame and crops every face it finds from the detector's box, as `aligner.align(frame)` does (only "
          "a tracked face the detector misses goes on from its landmark crop), adding track ids.", "",
          "| clip | reference | face-frames, reference | face-frames, tracking | reference's faces that tracking "
          "also finds | found by tracking only | median landmark gap, matched faces (% of crop side) |",
          "|---|---|---|---|---|---|---|"]
    for (c, ref), m in cmp.items():
        name = "`aligner.align(frame)`" if ref == "align" else "tracking, detect_every=1"
        L.append(f"| ({c}) | {name} | {m['detected']} | {m['tracked']} | {m['matched']} "
                 f"({100 * m['matched'] / max(m['detected'], 1):.1f}%) | {m['tracking_only']} | "
                 f"{m['median_gap_pct']:.2f} |")
    loop = stats["render/loop"]
    parts = {k: statistics.median(r["parts"][k] for r in rows["render/loop"]) * 1000 / n
             for k in rows["render/loop"][0]["parts"]}
    L += ["", f"The documented `trans3dhead predict CLIP -o OUT --smooth --render` on clip (a) ({n} frames, "
          f"{w_a}x{h_a}, with its audio), one core:", "",
          "| what | frames/s | CPU ms per frame, encoder included | faces |", "|---|---|---|---|",
          f"| library loop: tracking with One-Euro smoothing, JSON Lines, the default overlay "
          f"(wireframe,landmarks,axes,pose), H.264 + audio writer (decode excluded) | {fmt(loop)} | "
          f"{1000 / loop['per_cpu_s']:.1f} | {loop['found']} |"]
    steady = None
    if "render/cli" in stats:
        cli, cli1 = stats["render/cli"], stats["render/cli1"]
        steady = (n - 1) / (cli["wall_s"] - cli1["wall_s"]) if cli["wall_s"] > cli1["wall_s"] else float("nan")
        L += [f"| `trans3dhead predict ... --threads 1` end to end: start-up, model load, decode, writing | "
              f"{fmt(cli)} | "
              f"{1000 / cli['per_cpu_s']:.1f} | {cli['found']} |",
              f"| the same command on a 1-frame cut (its fixed cost: start-up, model load, encoder start, audio) | "
              f"{cli1['wall_s']:.2f} s | | |",
              f"| CLI per frame once started: ({n} - 1) frames / (the two wall times' difference) | {steady:.1f} | | |"]
    L += ["", "Library loop, median ms per frame: " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()) +
          " (write: piping the frame to the encoder and its final flush; on one core the encoder's work lands "
          "wherever the scheduler runs it).", ""]
    if photos:
        pt, pm = stats["photos/t3dh"], stats["photos/mp"]
        L += [f"Photos: the first {len(photos)} AFLW2000-3D images ({photos[0].shape[1]}x{photos[0].shape[0]} JPEG, "
              "one labelled face each; some hold a second person), decoded before timing, one at a time:", "",
              "| method | images/s | images per CPU-s | faces found |", "|---|---|---|---|",
              f"| trans3dhead `aligner.align(image)`, detector on every image | {fmt(pt)} | {pt['per_cpu_s']:.1f} | "
              f"{pt['found']} |",
              f"| {mp_name}, static_image_mode, max_num_faces=1 | {fmt(pm)} | {pm['per_cpu_s']:.1f} | {pm['found']} |",
              ""]
    share = {c: cmp[c, "align"]["matched"] / max(cmp[c, "align"]["detected"], 1) for c in clips}
    share1 = {c: cmp[c, "1"]["matched"] / max(cmp[c, "1"]["detected"], 1) for c in clips}
    fb, mb = stats["b/t3dh/10"]["faces_per_s"], stats["b/mp"]["faces_per_s"]
    cli_fps = stats["render/cli"]["per_s"] if "render/cli" in stats else None

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    L += ["Targets (issue 13):", "",
          f"- faces/s on the multi-face clip at one core >= MediaPipe's: {fb:.1f} against {mb:.1f} "
          f"({ratio('b/t3dh/10', 'b/mp')}) and against MediaPipe fed the tiles "
          f"{stats['b/mp/tiles']['faces_per_s']:.1f} ({ratio('b/t3dh/10', 'b/mp/tiles')}): "
          f"{verdict(fb >= max(mb, stats['b/mp/tiles']['faces_per_s']))}. Single-face clip (not a target): "
          f"{stats['a/t3dh/10']['faces_per_s']:.1f} against {stats['a/mp']['faces_per_s']:.1f} "
          f"({ratio('a/t3dh/10', 'a/mp')}).",
          f"- tracking finds >= 95% of the face-frames that detection on every frame (`aligner.align(frame)`) "
          f"finds: (a) {100 * share['a']:.1f}%, (b) {100 * share['b']:.1f}%, {verdict(min(share.values()) >= 0.95)} "
          f"(against detect_every=1: (a) {100 * share1['a']:.1f}%, (b) {100 * share1['b']:.1f}%).",
          f"- `--smooth --render` >= 30 frames/s on the {w_a}x{h_a} clip at one core (the encoder on the same "
          "core): " + (f"CLI end to end {cli_fps:.1f}, {verdict(cli_fps >= 30)}; the CLI once started "
                       f"{steady:.1f}, {verdict(steady >= 30)}; " if cli_fps is not None else "CLI not run; ")
          + f"the library loop {loop['per_s']:.1f}, {verdict(loop['per_s'] >= 30)}."]
    if varied:
        L += ["", f"Face counts differed between repeats in: {', '.join(varied)} (the table gives the first run's)."]
    text = "\n".join(L) + "\n"
    print(text)
    atomic_write_text(args.out + ".md", text)
    raw = {"command": command, "started_utc": started.isoformat(), "load_before": load_before, "load_after": load_after,
           "stats": stats, "comparison": {f"{c}_vs_{r}": m for (c, r), m in cmp.items()}, "offsets": offsets,
           "loop_parts_ms": parts,
           "rows": {k: [{x: v for x, v in r.items() if x != "faces" or not isinstance(v, list)} for r in reps]
                    for k, reps in rows.items()}}
    (work / "bench_video.json").write_text(json.dumps(raw, indent=1, default=float))
    return 0

if __name__ == "__main__":
    sys.exit(main())
