"""`trans3dhead train-face-score`: fit the face-score head on a trained network kept frozen, against
crops off the face and non-face images (training/face_score.py), and write the weights file with
the head."""
from __future__ import annotations


def cmd_train_face_score(args) -> int:
    from trans3dhead.cli.common import run_head_stage
    from trans3dhead.training.face_score import fit_face_score, format_face_score_report

    def fit(cfg, payload):
        from trans3dhead.inference.detectors import build_detector
        from trans3dhead.inference.detectors.base import AllDetectors

        f = cfg.face_score
        # each detector alone (no fallback): every detector's own boxes
        detectors = [build_detector(name, score_threshold=f.animal_detector_threshold, fallback=False)
                     for name in f.animal_detectors]
        return fit_face_score(cfg, payload, detector=detectors[0] if len(detectors) == 1 else AllDetectors(detectors))

    return run_head_stage(args, fit, format_face_score_report, "face-score")


def register(sub) -> None:
    from trans3dhead.cli.common import add_head_stage_arguments

    p = sub.add_parser("train-face-score", help="fit the face-score head on a trained network")
    add_head_stage_arguments(p, "configs/face_score.yaml (data and face_score sections)", "face_score.positives=3000")
    p.set_defaults(func=cmd_train_face_score)
