"""Bad input a new user hit (issue 11, section 4), each on a real file: an output folder that
cannot be written, out-of-range options, a video cut off half-way, an empty folder, a no-face
image with --mesh, the summary's counts, evaluate's per-model prediction files. Each gives one
line naming the problem and a non-zero exit code, never a traceback or silence, and leaves no
half-written output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from conftest import DATA_ROOT
from test_cli_evaluate import _subset_copy
from test_inference_data import MODEL, no_face_bgr, photo_path

from trans3dhead.cli import main

ROOT = Path(__file__).resolve().parents[1]
CLIP = DATA_ROOT / "video" / "side_profile.mp4"
ERROR = "trans3dhead: error: "


def predict(argv, capsys, quiet=True):
    code = main(["predict", "--model", MODEL, "--threads", "1", *(["--quiet"] if quiet else []), *map(str, argv)])
    return code, capsys.readouterr().err


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.strip()]


def leftovers(folder) -> list:
    return [p for p in Path(folder).rglob(".*") if p.is_file()]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Real frames of side_profile.mp4 (the first 30, shrunk to 324x210) as an MJPG AVI, and a copy
    cut off at 55% of its bytes: its header still announces 30 frames."""
    folder = tmp_path_factory.mktemp("clips")
    cap = cv2.VideoCapture(str(CLIP))
    assert cap.isOpened(), CLIP
    full = folder / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 10, (324, 210))
    for _ in range(30):
        ok, frame = cap.read()
        assert ok
        writer.write(cv2.resize(frame, (324, 210), interpolation=cv2.INTER_AREA))
    writer.release()
    cap.release()
    data = full.read_bytes()
    cut = folder / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.55)])
    return full, cut


def _decodable_frames(path) -> tuple[int, int]:
    cap = cv2.VideoCapture(str(path))
    header, n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n, header


# --- an output folder that cannot be written ------------------------------------------------

@pytest.mark.parametrize("kind", ["folder", "video"])
def test_output_under_a_regular_file(tmp_path, capsys, clips, kind):
    """-o below a regular file cannot be created: one line naming it, exit 2, nothing written."""
    if kind == "folder":
        source = tmp_path / "photos"
        source.mkdir()
        (source / "face.jpg").write_bytes(photo_path().read_bytes())
    else:
        source = clips[0]
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder\n")
    code, err = predict([source, "-o", blocker / "out"], capsys)
    assert code == 2
    assert error_lines(err) == [f"{ERROR}-o {blocker / 'out'}: cannot create or write this output folder "
                                "(Not a directory); choose a writable folder"]
    assert blocker.read_text() == "a file, not a folder\n" and sorted(tmp_path.iterdir()) == sorted(
        [blocker, source] if kind == "folder" else [blocker])


def test_output_folder_that_takes_no_file(capsys, clips):
    """/proc/self exists but no file can be created in it (root included)."""
    code, err = predict([clips[0], "-o", "/proc/self"], capsys)
    assert code == 2
    (line,) = error_lines(err)
    assert line.startswith(f"{ERROR}-o /proc/self: cannot create or write this output folder (")


def test_output_file_blocked_by_a_folder(tmp_path, capsys, clips):
    """The output folder is fine but a folder sits where clip.jsonl must go: the rename fails
    after the frames were processed; one line, exit 1, no temporary file left."""
    out = tmp_path / "out"
    (out / "full.jsonl").mkdir(parents=True)
    code, err = predict([clips[0], "-o", out], capsys)
    assert code == 1
    assert error_lines(err) == [f"{ERROR}{out / 'full.jsonl'}: cannot be written (Is a directory)"]
    assert not leftovers(out)


def test_folder_jsonl_blocked_by_a_folder(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "face.jpg").write_bytes(photo_path().read_bytes())
    out = tmp_path / "out"
    (out / "photos.jsonl").mkdir(parents=True)
    code, err = predict([photos, "-o", out], capsys)
    assert code == 2
    assert error_lines(err) == [f"{ERROR}{out / 'photos.jsonl'}: cannot be written (Is a directory)"]
    assert not leftovers(out)


# --- options out of range -------------------------------------------------------------------

@pytest.mark.parametrize("option, value, words", [
    ("--score-threshold", "-3", "must lie in [0, 1]"),
    ("--score-threshold", "1.5", "must lie in [0, 1]"),
    ("--score-threshold", "nan", "must lie in [0, 1]"),
    ("--score-threshold", "high", "is not a number"),
    ("--batch-size", "0", "must be at least 1"),
    ("--batch-size", "-4", "must be at least 1"),
    ("--threads", "0", "must be at least 1"),
    ("--threads", "-1", "must be at least 1"),
    ("--smooth-min-cutoff", "0", "must be greater than 0"),
    ("--smooth-min-cutoff", "inf", "must be a finite number"),
    ("--smooth-beta", "-1", "must be 0 or more"),
])
def test_out_of_range_option_is_a_usage_error(tmp_path, capsys, option, value, words):
    with pytest.raises(SystemExit) as info:
        main(["predict", str(photo_path()), "-o", str(tmp_path / "out"), option, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]  # argparse: the usage, then one line naming the option and the problem
    assert last.startswith(f"trans3dhead predict: error: argument {option}: ") and last.endswith(words), last
    assert not (tmp_path / "out").exists()


def test_threshold_bounds_are_accepted(tmp_path, capsys):
    """The control: 0 and 1 are in range (1 keeps nothing, 0 keeps everything the detector has)."""
    code, err = predict([photo_path(), "-o", tmp_path / "hi", "--score-threshold", "1"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "hi" / "example_astronaut.json").read_text())["faces"] == []
    code, err = predict([photo_path(), "-o", tmp_path / "lo", "--score-threshold", "0.5"], capsys)
    assert code == 0, err
    assert len(json.loads((tmp_path / "lo" / "example_astronaut.json").read_text())["faces"]) == 1


# --- a video cut off half-way ---------------------------------------------------------------

def test_ffmpeg_complains_about_the_cut_clip_by_itself(clips):
    """The control for the next test: left alone, OpenCV's FFmpeg prints its own log line on this
    file, so the next test's clean stderr means predict silenced it."""
    code = f"import cv2\ncap = cv2.VideoCapture({str(clips[1])!r})\nwhile cap.read()[0]:\n    pass\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert "[mjpeg @" in proc.stderr, proc.stderr


def test_cut_off_video_keeps_its_frames_and_says_how_many(tmp_path, clips):
    """In a subprocess, as a user runs it, so that FFmpeg's own stderr (C level) is seen too."""
    full, cut = clips
    decoded, header = _decodable_frames(cut)
    assert header == 30 and 5 < decoded < 30, (decoded, header)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    proc = subprocess.run([sys.executable, "-m", "trans3dhead.cli", "predict", str(full), str(cut), "-o", str(out),
                           "--model", MODEL, "--threads", "1", "--quiet"], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 1, proc.stderr
    assert error_lines(proc.stderr) == [
        f"{ERROR}{cut}: the video stops after {decoded} of the 30 frames its header announces (cut off or "
        f"corrupt); the {decoded} decoded frames were written to {out / 'cut.jsonl'}"]
    rows = [json.loads(line) for line in (out / "cut.jsonl").read_text().splitlines()]
    assert [r["frame_index"] for r in rows] == list(range(decoded))
    assert sum(len(r["faces"]) for r in rows) >= decoded - 2  # a real face, found in the frames kept
    full_rows = (out / "full.jsonl").read_text().splitlines()
    assert len(full_rows) == 30  # the whole clip: no complaint about it
    assert not leftovers(out)


# --- an empty folder ------------------------------------------------------------------------

def test_folder_without_images_is_a_failed_input(tmp_path, capsys):
    empty = tmp_path / "holiday"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no pictures here\n")
    out = tmp_path / "out"
    code, err = predict([empty, photo_path(), "-o", out], capsys)
    assert code == 1
    (line,) = error_lines(err)
    assert line.startswith(f"{ERROR}{empty}: no image or video file in this folder (searched recursively for ")
    assert ".jpg" in line and ".mp4" in line and line.endswith("nothing written for it")
    assert not (out / "holiday.jsonl").exists() and not (out / "holiday").exists()
    assert (out / "example_astronaut.json").is_file()  # the other input was still processed


# --- --mesh without faces, the summary, evaluate's file names -------------------------------

def test_mesh_list_is_empty_for_an_image_without_faces(tmp_path, capsys):
    image = tmp_path / "suit.png"
    cv2.imwrite(str(image), no_face_bgr())
    code, err = predict([image, "-o", tmp_path / "out", "--mesh", "obj"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "out" / "suit.json").read_text())
    assert doc["faces"] == [] and doc["meshes"] == []
    assert not list((tmp_path / "out").glob("*.obj"))


def test_summary_counts_only_the_images_done(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "face.jpg").write_bytes(photo_path().read_bytes())
    (photos / "broken.jpg").write_bytes(photo_path().read_bytes()[:5000])
    (photos / "notes.png").write_text("not an image\n")
    out = tmp_path / "out"
    code, err = predict([photos, tmp_path / "missing.jpg", "-o", out], capsys, quiet=False)
    assert code == 1
    assert err.strip().splitlines()[-1] == (f"1 image(s), 0 video(s) done, 1 face(s); 3 input(s) failed; "
                                            f"outputs in {out}")


def test_evaluate_names_each_predictions_file(run_cli, aflw2000_root, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _subset_copy(aflw2000_root, data)
    target = tmp_path / "p.npz"
    code, out, err = run_cli("evaluate", "--data-root", data, "--model", "3ddfa-mb05", "--model", "trans3dhead",
                             "--save-predictions", target, "--quiet")
    assert code == 0, err
    written = [tmp_path / "p_3ddfa-mb05.npz", tmp_path / "p_trans3dhead.npz"]
    assert out.strip().splitlines()[-2:] == [f"predictions of 3ddfa-mb05: {written[0]}",
                                            f"predictions of trans3dhead: {written[1]}"]
    assert all(p.is_file() for p in written) and not target.exists()
