"""`trans3dhead evaluate`: score models on AFLW2000-3D (NME by yaw bin, pose MAE)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trans3dhead.cli.common import MODEL_NAMES, positive_int, set_threads
from trans3dhead.errors import Trans3DHeadError


def _load_landmarks_file(path, n: int) -> np.ndarray:
    from trans3dhead.fileio import require_file
    p = require_file(path, "--landmarks")
    try:
        arr = np.load(p, allow_pickle=False).astype(np.float64)
    except Exception as exc:
        raise Trans3DHeadError(f"{p}: not a readable .npy array ({type(exc).__name__})") from None
    if arr.ndim == 3 and arr.shape[0] == n and arr.shape[1] == 68 and arr.shape[2] in (2, 3):
        return arr
    if arr.ndim == 3 and arr.shape[0] == n and arr.shape[2] == 68 and arr.shape[1] in (2, 3):
        return arr.transpose(0, 2, 1)
    raise Trans3DHeadError(f"{p}: shape {arr.shape} is not ({n}, 68, 2|3) or ({n}, 2|3, 68)")


def _predict_with_detector(model, ds, threads, batch_size: int, progress: bool, flip: bool = False,
                           detector: str | None = None) -> dict:
    """The whole photo pipeline on the full 450x450 images: the detector (default: the library's)
    and its crop policy,
    the detected face nearest the image centre. A miss is scored with the mean face at the image
    centre (the mean parameters in a crop box over the whole image) and counted."""
    from tqdm import tqdm

    from trans3dhead.face_model.bfm import FaceModel, load_bfm_arrays
    from trans3dhead.face_model.frames import CROP_SIZE, crop_to_image
    from trans3dhead.face_model.pose import pose_deg_from_params
    from trans3dhead.inference import HeadAligner
    from trans3dhead.inference.detectors import DEFAULT_DETECTOR

    aligner = HeadAligner(model=model, threads=threads, batch_size=batch_size, flip=flip,
                          detector=detector or DEFAULT_DETECTOR)
    mean_params = load_bfm_arrays()["param_mean"].astype(np.float64)
    mean_crop = FaceModel(dense=False).mean_landmarks_crop(CROP_SIZE).numpy().astype(np.float64)
    lm = np.empty((len(ds), 68, 3))
    pose = np.empty((len(ds), 3))
    misses = []
    bar = tqdm(total=len(ds), desc="detecting + predicting", disable=not progress, leave=False)
    for i, res in enumerate(aligner.align_files([ds.image_path(k) for k in range(len(ds))], progress=bar.update)):
        if res.error is not None:
            raise Trans3DHeadError(res.error)
        h, w = res.image.shape[:2]
        if not res.faces:
            misses.append(ds.names[i])
            lm[i] = crop_to_image(mean_crop, np.array([0.0, 0.0, w, h]), CROP_SIZE)
            pose[i] = pose_deg_from_params(mean_params[None])[0]
            continue
        centre = np.array([w / 2, h / 2])
        face = min(res.faces, key=lambda f: np.linalg.norm((f.crop_box[:2] + f.crop_box[2:]) / 2 - centre))
        lm[i], pose[i] = face.landmarks_3d, face.pose.angles
    bar.close()
    return {"landmarks_3d": lm.astype(np.float32), "pose_deg": pose.astype(np.float32), "misses": misses,
            "params": np.full((len(ds), 62), np.nan, np.float32)}


def cmd_evaluate(args) -> int:
    from trans3dhead.evaluation.aflw2000_3d import run_aflw2000, score_predictions
    from trans3dhead.data.aflw2000_3d import AFLW2000_3D
    from trans3dhead.evaluation.metrics import format_table, write_json
    from trans3dhead.fileio import atomic_path
    from trans3dhead.weights import load_network

    if args.dataset != "aflw2000-3d":
        raise Trans3DHeadError(f"--dataset {args.dataset}: unknown dataset; supported: aflw2000-3d")
    set_threads(args.threads)
    ds = AFLW2000_3D(args.data_root)
    gt = _load_landmarks_file(args.landmarks, len(ds)) if args.landmarks else None
    rows, payload, written = {}, {}, []
    if args.crops == "detector" and args.protocol != "package":
        raise Trans3DHeadError("--crops detector is scored in the package frame only (drop --protocol 3ddfa)")
    if args.detector and args.crops != "detector":
        raise Trans3DHeadError("--detector needs --crops detector")
    misses = {}
    runs = [(name, det) for name in args.model or [None] for det in args.detector or [None]]
    for name, det in runs:
        label = (name or "trans3dhead (default)") + (f" + {det}" if det else "")
        if args.crops == "detector":
            pred = _predict_with_detector(name, ds, args.threads, args.batch_size, not args.quiet, args.flip, det)
            misses[label] = pred["misses"]
        else:
            pred = run_aflw2000(load_network(name), ds, crops=args.crops, batch_size=args.batch_size,
                                progress=not args.quiet, flip=args.flip)
        scores = score_predictions(ds, pred, gt, protocol=args.protocol)
        rows[label] = scores
        payload[label] = scores.to_dict()
        if label in misses:
            payload[label]["detector_misses"] = misses[label]
        if args.save_predictions:
            out = Path(args.save_predictions)
            if len(runs) > 1:
                tag = Path(name or "trans3dhead (default)").stem + (f"_{det.split(':')[0]}" if det else "")
                out = out.with_name(f"{out.stem}_{tag}{out.suffix}")
            with atomic_path(out, suffix=".npz") as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, names=np.array(ds.names), landmarks_2d=pred["landmarks_3d"][..., :2],
                             landmarks_3d=pred["landmarks_3d"], pose_deg=pred["pose_deg"], params=pred["params"])
            written.append(f"predictions of {label}: {out}")
    print(f"AFLW2000-3D, crops={args.crops}, protocol={args.protocol}, "
          f"ground truth={'--landmarks ' + args.landmarks if args.landmarks else 'pt3d_68'}; "
          f"NME in %, pose MAE in degrees over {next(iter(rows.values())).pose_count} faces")
    print(format_table(rows))
    for label, missed in misses.items():
        print(f"{label}: the detector found no face in {len(missed)} of {len(ds)} images "
              f"(scored with the mean face at the image centre){': ' + ', '.join(missed) if missed else ''}")
    for line in written:  # with several --model, one file each: p.npz -> p_<model>.npz
        print(line)
    if args.json:
        write_json(args.json, {"dataset": "aflw2000-3d", "crops": args.crops, "protocol": args.protocol,
                               "landmarks": args.landmarks, "results": payload})
    return 0


def register(sub) -> None:
    from trans3dhead.inference.detectors import DETECTORS, detector_arg

    ev = sub.add_parser("evaluate", help="score a model on AFLW2000-3D (NME by yaw bin, pose MAE)")
    ev.add_argument("--dataset", default="aflw2000-3d")
    ev.add_argument("--data-root", required=True, help="the aflw2000_3d folder")
    ev.add_argument("--model", action="append", help=f"named model ({MODEL_NAMES}) or weights file; repeat to compare")
    ev.add_argument("--crops", choices=["provided", "warp", "detector"], default="provided",
                    help="provided: the standard crops_120; warp: bilinear crops of roi_box from the images; "
                         "detector: the whole photo pipeline on the full images (the default detector, the face "
                         "nearest the centre; a miss is scored as the mean face at the centre and counted)")
    ev.add_argument("--detector", action="append", type=detector_arg, metavar="{%s,yunet:PATH}" % ",".join(sorted(DETECTORS)),
                    help="with --crops detector: the face detector (default: the library's); repeat to compare")
    ev.add_argument("--protocol", choices=["package", "3ddfa"], default="package",
                    help="package: exact package frame; 3ddfa: as 3DDFA's benchmark (0-based decode vs stored)")
    ev.add_argument("--landmarks", help="other ground truth .npy (2000, 68, 2|3) in pt3d_68's frame")
    ev.add_argument("--save-predictions", help="write names, landmarks_2d, landmarks_3d, pose_deg to this .npz "
                    "(with several --model, one file each: NAME_<model>.npz, each printed)")
    ev.add_argument("--json", help="write the scores to this JSON file")
    ev.add_argument("--flip", action="store_true",
                    help="test-time flip: landmarks averaged with those of the mirrored crops (pose unchanged)")
    ev.add_argument("--batch-size", type=positive_int, default=100)
    ev.add_argument("--threads", type=positive_int, default=None)
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_evaluate)
