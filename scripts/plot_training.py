"""Plot a run's training loss and validation NME from its CSV log.

    python scripts/plot_training.py runs/default docs/default_training.png
"""
import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def series(rows, key):
    pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
    return [p[0] for p in pts], [p[1] for p in pts]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("out_png")
    args = parser.parse_args()
    rows = list(csv.DictReader(open(Path(args.run_dir) / "logs" / "version_0" / "metrics.csv")))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("train/total", "train/landmark", "train/vertex"):
        x, y = series(rows, key)
        if x:
            ax1.plot(x, y, label=key, lw=0.8)
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_title("training loss (unweighted terms; landmark in crop px)")
    ax1.legend()
    for key in ("val/nme_teacher_branch", "val/nme_teacher_3dmm", "val/nme_teacher_fused",
                "val/nme_human_inner_branch", "val/nme_human_inner_teacher"):
        x, y = series(rows, key)
        if x:
            ax2.plot(x, y, marker="o", label=key)
    ax2.set_xlabel("step")
    ax2.set_ylabel("NME (%)")
    ax2.set_title("validation split (950 held-out AFLW crops)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(args.out_png, dpi=90)
    print("wrote", args.out_png)


if __name__ == "__main__":
    main()
