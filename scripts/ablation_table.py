"""Markdown table of the ablation runs' final validation metrics (scripts/run_ablation.sh).

    python scripts/ablation_table.py runs/ablation
"""
import csv
import sys
from pathlib import Path

ORDER = ["full", "no_qamem", "no_marr", "no_euler", "no_cross_branch", "no_3dmm_branch", "plus_human_labels",
         "size_small", "size_large"]
COLS = [("val/nme_teacher_branch", "NME vs teacher [branch]"), ("val/nme_teacher_fused", "NME vs teacher [fused]"),
        ("val/nme_human_inner_branch", "NME vs MERL-RAV inner [branch]"),
        ("val/nme_human_inner_fused", "NME vs MERL-RAV inner [fused]"), ("val/pose_mae_teacher", "pose MAE vs teacher (deg)")]


def final_metrics(run: Path) -> dict:
    rows = list(csv.DictReader(open(run / "logs" / "version_0" / "metrics.csv")))
    out = {}
    for r in rows:
        out.update({k: v for k, v in r.items() if k.startswith("val/") and v})
    return out


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/ablation")
    print("| run | " + " | ".join(c for _, c in COLS) + " |")
    print("|---|" + "---|" * len(COLS))
    for name in ORDER:
        if not (root / name / "checkpoints" / "last.ckpt").is_file():  # missing or unfinished
            continue
        m = final_metrics(root / name)
        print(f"| {name} | " + " | ".join(f"{float(m[k]):.3f}" if k in m else "-" for k, _ in COLS) + " |")


if __name__ == "__main__":
    main()
