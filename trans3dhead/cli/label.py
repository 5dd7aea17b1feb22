"""`trans3dhead label`: cache the teacher's labels of the AFLW training crops (direct and mirrored
views), for use with ``data.teacher_labels=FILE``."""
from __future__ import annotations

from trans3dhead.cli.common import positive_int, set_threads


def cmd_label(args) -> int:
    import numpy as np

    from trans3dhead.data.aflw_crops import AFLWCrops
    from trans3dhead.training.labels import label_views, write_label_cache
    from trans3dhead.weights import load_network

    set_threads(args.threads)
    reader = AFLWCrops(args.data_root)
    n = min(args.limit or len(reader), len(reader))
    crops = np.stack([reader.read_crop(i) for i in range(n)])
    labels = label_views(load_network(args.teacher), crops)
    write_label_cache(args.output, labels, reader.names[:n], args.teacher)
    print(f"wrote {args.output}: {n} crops labelled by {args.teacher} (direct and mirrored views, flip-averaged)")
    return 0


def register(sub) -> None:
    lb = sub.add_parser("label", help="cache teacher labels for the AFLW training crops (use with data.teacher_labels=FILE)")
    lb.add_argument("--data-root", required=True, help="the aflw_crops folder")
    lb.add_argument("--teacher", default="3ddfa-mb05")
    lb.add_argument("-o", "--output", required=True, help=".npz to write")
    lb.add_argument("--threads", type=positive_int, default=None)
    lb.add_argument("--limit", type=positive_int, default=None, help="label only the first N crops")
    lb.set_defaults(func=cmd_label)
