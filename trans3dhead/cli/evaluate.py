"""`trans3dhead evaluate`: score models on AFLW2000-3D (NME by yaw bin, pose MAE)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trans3dhead.cli.common import positive_int, set_threads
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
    for name in args.model or [None]:
        net = load_network(name)
        label = name or "trans3dhead (default)"
        pred = run_aflw2000(net, ds, crops=args.crops, batch_size=args.batch_size, progress=not args.quiet)
        scores = score_predictions(ds, pred, gt, protocol=args.protocol)
        rows[label] = scores
        payload[label] = scores.to_dict()
        if args.save_predictions:
            out = Path(args.save_predictions)
            if len(args.model or [None]) > 1:
                out = out.with_name(f"{out.stem}_{Path(label).stem}{out.suffix}")
            with atomic_path(out, suffix=".npz") as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, names=np.array(ds.names), landmarks_2d=pred["landmarks_3d"][..., :2],
                             landmarks_3d=pred["landmarks_3d"], pose_deg=pred["pose_deg"], params=pred["params"])
            written.append(f"predictions of {label}: {out}")
    print(f"AFLW2000-3D, crops={args.crops}, protocol={args.protocol}, "
          f"ground truth={'--landmarks ' + args.landmarks if args.landmarks else 'pt3d_68'}; "
          f"NME in %, pose MAE in degrees over {next(iter(rows.values())).pose_count} faces")
    print(format_table(rows))
    for line in written:  # with several --model, one file each: p.npz -> p_<model>.npz
        print(line)
    if args.json:
        write_json(args.json, {"dataset": "aflw2000-3d", "crops": args.crops, "protocol": args.protocol,
                               "landmarks": args.landmarks, "results": payload})
    return 0


def register(sub) -> None:
    ev = sub.add_parser("evaluate", help="score a model on AFLW2000-3D (NME by yaw bin, pose MAE)")
    ev.add_argument("--dataset", default="aflw2000-3d")
    ev.add_argument("--data-root", required=True, help="the aflw2000_3d folder")
    ev.add_argument("--model", action="append", help="named model or weights file; repeat to compare")
    ev.add_argument("--crops", choices=["provided", "warp"], default="provided",
                    help="provided: the standard crops_120; warp: bilinear crops of roi_box from the images")
    ev.add_argument("--protocol", choices=["package", "3ddfa"], default="package",
                    help="package: exact package frame; 3ddfa: as 3DDFA's benchmark (0-based decode vs stored)")
    ev.add_argument("--landmarks", help="other ground truth .npy (2000, 68, 2|3) in pt3d_68's frame")
    ev.add_argument("--save-predictions", help="write names, landmarks_2d, landmarks_3d, pose_deg to this .npz "
                    "(with several --model, one file each: NAME_<model>.npz, each printed)")
    ev.add_argument("--json", help="write the scores to this JSON file")
    ev.add_argument("--batch-size", type=positive_int, default=100)
    ev.add_argument("--threads", type=positive_int, default=None)
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_evaluate)
