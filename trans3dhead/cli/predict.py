"""`trans3dhead predict`: argument parsing, input discovery, output naming and the exit code. The
work is done by trans3dhead.inference.

predict writes, per image, OUTDIR/<name>.json (docs/output_schema.md), and with --mesh
OUTDIR/<name>_face<i>.obj|ply, with --render OUTDIR/<name>_overlay.png. A folder's files keep their
relative paths under OUTDIR/<folder name>/, and OUTDIR/<folder name>.jsonl holds one line per
image. A video gives OUTDIR/<name>.jsonl (one line per frame) and with --render
OUTDIR/<name>_overlay.mp4. Exit code: 0 all inputs done, 1 some inputs failed (each named on
stderr; the others are still processed), 2 a bad option or model, or an output folder that cannot
be written. An input fails when it is missing or unreadable, when a folder holds no image or video
file (no .jsonl is written for it), and when a video stops before the frame count its header
announces (the frames that decoded are kept and written; the line says how many of how many).
"""
from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from trans3dhead.cli.common import (MODEL_NAMES, non_negative_float, non_negative_int, positive_float, positive_int, set_threads,
                                    unit_interval)
from trans3dhead.errors import Trans3DHeadError

EXIT_OK, EXIT_SOME_FAILED = 0, 1


@dataclass
class Job:
    """One input to process: an image or a video, where its outputs go, and its folder's JSONL."""

    path: Path | str  # a str for a camera index or a stream URL
    kind: str  # "image" | "video" | "live" (camera or stream) | "missing" | "empty" (a folder without an image or video)
    base: Path  # output path without suffix
    group: str | None = None  # the folder it came from (its JSONL collects it)


def _collect_jobs(inputs: list[str], outdir: Path) -> tuple[list[Job], dict[str, Path]]:
    from trans3dhead.inference.images import IMAGE_SUFFIXES, VIDEO_SUFFIXES
    from trans3dhead.inference.video import is_live_source

    jobs, groups, used = [], {}, set()

    def unique(base: Path) -> Path:
        cand, k = base, 2
        while cand in used:
            cand = base.with_name(f"{base.name}_{k}")
            k += 1
        used.add(cand)
        return cand

    for raw in inputs:
        p = Path(raw)
        if is_live_source(raw) and not p.exists():  # "0": camera 0; "rtsp://...": a stream
            name = f"camera{raw}" if raw.isdigit() else "stream_" + "".join(c if c.isalnum() else "_" for c in raw)[-60:]
            jobs.append(Job(raw, "live", unique(outdir / name)))
            continue
        if p.is_dir():
            name = unique(outdir / (p.resolve().name or "root"))
            groups[raw] = _with(name, ".jsonl")
            wanted = IMAGE_SUFFIXES | VIDEO_SUFFIXES
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in wanted)
            if not files:
                groups.pop(raw)
                jobs.append(Job(p, "empty", name))
            for f in files:
                rel = f.relative_to(p).with_suffix("")
                kind = "video" if f.suffix.lower() in VIDEO_SUFFIXES else "image"
                jobs.append(Job(f, kind, unique(name / rel), raw))
        elif p.exists():
            kind = "video" if p.suffix.lower() in VIDEO_SUFFIXES else "image"
            jobs.append(Job(p, kind, unique(outdir / p.stem)))
        else:
            jobs.append(Job(p, "missing", outdir / p.stem))
    return jobs, groups


def _with(base: Path, suffix: str) -> Path:
    """base + suffix (not Path.with_suffix, which would eat a dot inside a name like 'v1.2')."""
    return base.with_name(base.name + suffix)


class Reporter:
    """Prints one line per failed input to stderr, around the progress bar."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.failed = 0

    def error(self, message: str, bar=None) -> None:
        self.failed += 1
        line = f"trans3dhead: error: {message}"
        if bar is not None:
            bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)


def _run_info(args, aligner) -> dict:
    from trans3dhead import __version__

    return {"trans3dhead_version": __version__, "model": aligner.model_name, "backend": aligner.backend_name,
            "detector": aligner.detector.name, "second_pass": aligner.second_pass, "flip": aligner.flip,
            "min_quality": aligner.min_quality}


def _image_outputs(args, job_base: Path, image, faces, run_info: dict, source: str) -> dict:
    """Write the mesh and overlay files of one image; return its JSON document."""
    from trans3dhead.inference import writers

    meshes = [] if args.mesh else None
    if args.mesh:
        for i, face in enumerate(faces):
            mesh = face.mesh()
            target = _with(job_base, f"_face{i}.{args.mesh}")
            writers.MESH_WRITERS[args.mesh](target, mesh, writers.vertex_colors(image, mesh.vertices))
            meshes.append(target.name)
    if args.render:
        import cv2

        from trans3dhead.fileio import atomic_write_bytes
        from trans3dhead.inference.render import render_overlay

        ok, png = cv2.imencode(".png", render_overlay(image, faces, args.render))
        atomic_write_bytes(_with(job_base, "_overlay.png"), png.tobytes())
    h, w = image.shape[:2]
    return writers.image_document(source, (w, h), faces, run_info, meshes=meshes)


def _process_images(args, aligner, jobs: list[Job], sinks: dict, reporter: Reporter, run_info: dict) -> int:
    from tqdm import tqdm

    from trans3dhead.inference import writers

    n_done = n_faces = 0
    bar = tqdm(total=len(jobs), desc="images", unit="img", disable=args.quiet or len(jobs) < 2, file=sys.stderr)
    by_path = {str(j.path): j for j in jobs}
    for res in aligner.align_files([j.path for j in jobs], progress=bar.update):
        job = by_path[res.path]
        if res.error is None:
            try:
                doc = _image_outputs(args, job.base, res.image, res.faces, run_info, res.path)
                writers.write_json(_with(job.base, ".json"), doc)
                n_done += 1
                n_faces += len(res.faces)
            except Trans3DHeadError as exc:  # an output folder that cannot be written (fileio names it)
                res.error = f"{res.path}: outputs not written: {exc}"
        if res.error is not None:
            reporter.error(res.error, bar)
            doc = writers.image_document(res.path, (0, 0), None, run_info, error=res.error)
        if job.group is not None:
            sinks[job.group].write(doc)
    bar.close()
    return n_done, n_faces


def _process_video(args, aligner, job: Job, sinks: dict, reporter: Reporter, run_info: dict) -> int:
    from tqdm import tqdm

    from trans3dhead.inference import writers
    from trans3dhead.inference.render import DEFAULT_STYLES, render_overlay
    from trans3dhead.inference.video import VideoSink, probe_video

    live = job.kind == "live"
    info = probe_video(job.path)  # a camera or stream is opened once, by align_video
    info_doc = dict(run_info, smoothing={"one_euro_min_cutoff_hz": args.smooth_min_cutoff,
                                         "one_euro_beta": args.smooth_beta} if args.smooth else None,
                    fps=info.fps, detect_every=args.detect_every)
    lines = writers.JsonLinesWriter(_with(job.base, ".jsonl"))
    sink = None
    n_faces = n_frames = 0
    name = str(job.path) if live else job.path.name
    bar = tqdm(total=info.frame_count or None, desc=name, unit="frame", disable=args.quiet, file=sys.stderr)
    frames = aligner.align_video(job.path, smooth=args.smooth, min_cutoff=args.smooth_min_cutoff,
                                 beta=args.smooth_beta, detect_every=args.detect_every)
    try:
        for fr in _until_interrupted(frames, live):
            meshes = [] if args.mesh else None
            if args.mesh:
                for i, face in enumerate(fr.faces):
                    mesh = face.mesh()
                    target = job.base.parent / f"{job.base.name}_meshes" / f"frame{fr.index:06d}_face{i}.{args.mesh}"
                    writers.MESH_WRITERS[args.mesh](target, mesh, writers.vertex_colors(fr.image, mesh.vertices))
                    meshes.append(f"{target.parent.name}/{target.name}")
            h, w = fr.image.shape[:2]
            doc = writers.image_document(str(job.path), (w, h), fr.faces, info_doc, frame_index=fr.index,
                                         time_s=fr.time_s, meshes=meshes)
            lines.write(doc)
            if job.group is not None:
                sinks[job.group].write(doc)
            overlay = render_overlay(fr.image, fr.faces, args.render or DEFAULT_STYLES) if args.render or args.show \
                else None
            if args.render:
                if sink is None:
                    sink = VideoSink(_with(job.base, "_overlay.mp4"), info.fps, (w, h),
                                     audio_from=None if live else job.path)
                sink.write(overlay)
            if args.show and _preview(overlay):
                break
            n_faces += len(fr.faces)
            n_frames += 1
            bar.update(1)
    except BaseException:
        lines.abort()
        if sink is not None:
            sink.abort()
        raise
    finally:
        bar.close()
    try:
        lines.close()
    finally:
        if sink is not None:
            sink.close()
    if info.frame_count and n_frames < info.frame_count:  # cut off: what decoded is kept, and said
        reporter.error(f"{job.path}: the video stops after {n_frames} of the {info.frame_count} frames its header "
                       f"announces (cut off or corrupt); the {n_frames} decoded frames were written to "
                       f"{_with(job.base, '.jsonl')}")
    return n_faces


def _until_interrupted(frames, live: bool):
    """A camera or stream runs until Ctrl-C: there it ends the input normally (what was written is
    kept). For files, Ctrl-C still aborts the run (outputs removed, exit 130)."""
    try:
        yield from frames
    except KeyboardInterrupt:
        if not live:
            raise
        print("trans3dhead: stopped (Ctrl-C); outputs so far kept", file=sys.stderr)


def _preview(overlay) -> bool:
    """Show a frame in a window; True when the user pressed q or Esc (stop)."""
    import cv2

    cv2.imshow("trans3dhead (q to stop)", overlay)
    return (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)


def _parse_styles(text: str) -> tuple[str, ...]:
    import argparse

    from trans3dhead.inference.render import STYLES

    styles = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in styles if s not in STYLES]
    if bad or not styles:
        raise argparse.ArgumentTypeError(f"'{text}': styles are a comma-separated list of {', '.join(STYLES)}")
    return styles


def _prepare_output_folder(outdir: Path) -> None:
    """Create OUTDIR and check that it takes a file, before the model loads (one line if not)."""
    if outdir.exists() and not outdir.is_dir():
        raise Trans3DHeadError(f"-o {outdir}: exists and is not a folder")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".trans3dhead-write-check.", dir=outdir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise Trans3DHeadError(f"-o {outdir}: cannot create or write this output folder "
                               f"({exc.strerror or type(exc).__name__}); choose a writable folder") from None


def _folder_without_inputs(path: Path) -> str:
    from trans3dhead.inference.images import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    return (f"{path}: no image or video file in this folder (searched recursively for "
            f"{', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))}); nothing written for it")


def cmd_predict(args) -> int:
    # FFmpeg (inside OpenCV) prints its own decoder complaints, e.g. "[mjpeg @ 0x..] overread 8"
    # on a cut-off video; predict says what happened in its own line instead. OpenCV reads this
    # once, when it first opens a video in the process; a value the user set is kept.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    from trans3dhead.inference import HeadAligner, writers
    from trans3dhead.inference.detectors import build_detector

    set_threads(args.threads)  # the CLI owns the process; the library only scopes it
    inputs = list(args.inputs) + ([str(args.camera)] if args.camera is not None else [])
    if not inputs:
        raise Trans3DHeadError("no input: give image files, folders, videos, a stream URL or --camera N")
    if args.show and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                               or os.environ.get("WAYLAND_DISPLAY")):
        raise Trans3DHeadError("--show: no display here (DISPLAY is not set); drop --show or use --render")
    outdir = Path(args.output)
    _prepare_output_folder(outdir)
    detector = build_detector(args.detector, args.threads, args.score_threshold, args.detect_size)
    aligner = HeadAligner(model=args.model, detector=detector, backend=args.backend, second_pass=args.second_pass,
                          min_quality=args.min_quality, batch_size=args.batch_size, threads=args.threads,
                          flip=args.flip)
    run_info = _run_info(args, aligner)
    jobs, groups = _collect_jobs(inputs, outdir)
    reporter = Reporter(args.quiet)
    sinks = {}
    n_images = n_faces = n_videos = 0
    try:
        for g, path in groups.items():
            sinks[g] = writers.JsonLinesWriter(path)
        pending: list[Job] = []

        def flush():
            nonlocal n_faces, n_images
            if pending:
                done, faces = _process_images(args, aligner, pending, sinks, reporter, run_info)
                n_images += done
                n_faces += faces
                pending.clear()

        for job in jobs:
            if job.kind == "missing":
                reporter.error(f"{job.path}: no such file or folder")
            elif job.kind == "empty":
                reporter.error(_folder_without_inputs(job.path))
            elif job.kind == "image":
                pending.append(job)
            else:
                flush()
                try:
                    n_faces += _process_video(args, aligner, job, sinks, reporter, run_info)
                    n_videos += 1
                except Trans3DHeadError as exc:
                    reporter.error(str(exc))
                    if job.group is not None:
                        sinks[job.group].write(writers.image_document(str(job.path), (0, 0), None, run_info,
                                                                      error=str(exc)))
        flush()
    except BaseException:
        for s in sinks.values():
            s.abort()
        raise
    for s in sinks.values():
        s.close()
    if not args.quiet:
        print(f"{n_images} image(s), {n_videos} video(s) done, {n_faces} face(s); {reporter.failed} input(s) "
              f"failed; outputs in {outdir}", file=sys.stderr)
    return EXIT_SOME_FAILED if reporter.failed else EXIT_OK


def register(subparsers) -> None:
    from trans3dhead.inference.detectors import DEFAULT_DETECTOR, DETECTORS, YuNetDetector, detector_arg

    named = {**DETECTORS, "yunet:PATH": YuNetDetector}
    from trans3dhead.inference.quality import DEFAULT_MIN_QUALITY, RECOMMENDED_MIN_QUALITY
    from trans3dhead.inference.render import DEFAULT_STYLES

    p = subparsers.add_parser("predict", help="3D landmarks, head pose and meshes for images, folders and videos",
                              description=__doc__.split("\n\n")[1])
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="image files, folders (searched recursively), videos, a camera index (0) or a stream URL")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if needed)")
    p.add_argument("--model", default=None, help=f"named model ({MODEL_NAMES}), weights file, or .onnx file with "
                                                 "--backend onnx (default: trans3dhead)")
    p.add_argument("--backend", choices=["torch", "onnx"], default="onnx")
    p.add_argument("--mesh", choices=["obj", "ply"], help="write each face's dense mesh")
    p.add_argument("--render", nargs="?", const=",".join(DEFAULT_STYLES), type=_parse_styles, default=None,
                   metavar="STYLES", help="write overlays; STYLES: comma-separated of landmarks, axes, wireframe, pose, "
                                          f"depth (default {','.join(DEFAULT_STYLES)})")
    p.add_argument("--camera", type=non_negative_int, default=None, metavar="N",
                   help="read camera N (as the input 'N'); Ctrl-C (or q in --show) ends it, keeping the outputs")
    p.add_argument("--detect-every", type=positive_int, default=10, metavar="N",
                   help="videos: run the face detector every N frames and at shot cuts, track in between "
                        "(default 10; 1 = detect on every frame)")
    p.add_argument("--show", action="store_true", help="videos and cameras: a live preview window (needs a display)")
    p.add_argument("--smooth", action="store_true", help="videos: One-Euro smoothing of landmarks, pose and mesh")
    p.add_argument("--smooth-min-cutoff", type=positive_float, default=1.0, help="One-Euro cutoff when still, Hz (default 1)")
    p.add_argument("--smooth-beta", type=non_negative_float, default=10.0, help="One-Euro speed coefficient (default 10)")
    p.add_argument("--second-pass", action="store_true", help="re-crop around the first landmarks and run again")
    p.add_argument("--flip", action="store_true",
                   help="test-time flip: average each face's landmarks with those of its mirrored crop "
                        "(twice the network's work; pose and mesh unchanged)")
    p.add_argument("--detector", type=detector_arg, metavar="{%s,yunet:PATH}" % ",".join(sorted(DETECTORS)), default=DEFAULT_DETECTOR,
                   help=f"face detector (default {DEFAULT_DETECTOR}); each runs the other where it finds no face "
                        "(yunet: retinaface). faceboxes: about twice as fast on portrait-sized photos, but misses "
                        "faces under ~50 px of its input that retinaface finds; yunet:PATH: YuNet with its weights "
                        "file (not in the package), the fastest (docs/predict.md#speed)")
    p.add_argument("--score-threshold", type=unit_interval, default=None,
                   help="detector score threshold in [0, 1] (default: the detector's own, "
                        + ", ".join(f"{k} {v.score_threshold_default}" for k, v in sorted(named.items())) + ")")
    p.add_argument("--detect-size", type=positive_int, default=None, metavar="PX",
                   help="longer side images are shrunk to for detection only (default: the detector's own, "
                        + ", ".join(f"{k} {v.detect_size_default}" for k, v in sorted(named.items()))
                        + "; larger finds smaller faces in big photos and costs more; landmarks always use the "
                          "full image; docs/predict.md#speed)")
    p.add_argument("--min-quality", type=unit_interval, default=DEFAULT_MIN_QUALITY, metavar="Q",
                   help="drop faces whose quality (how face-like the crop is, 0..1) is below Q (default: keep "
                        f"every face; {RECOMMENDED_MIN_QUALITY} drops crops off the face, most non-faces and heavy blur, "
                        "and under 1%% of real faces; models without a landmark branch have no quality)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images (or frames) per batch (default 16)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for the network and the detector")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_predict)
