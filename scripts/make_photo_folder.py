"""The folder of real photos the photo-speed benchmark times (docs/results.md, "Photo speed"):
the first 100 AFLW2000-3D images (450x450 JPEG, copied as they are), the bundled 512x512 photo,
and 9 frames of the shared 4K clip (frames 0, 120, ..., 960) saved as JPEG (quality 95) at full
size (3456x2234) and shrunk to 1920x1241: 119 photos.

    python scripts/make_photo_folder.py cache/photos
    python benchmarks/bench_end_to_end.py --images cache/photos -n 119 --model trans3dhead --backend onnx --batch-size 1
"""
import argparse
import shutil
from pathlib import Path

import cv2

from trans3dhead.inference.examples import example_photo

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to fill (created)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for src in sorted((DATA / "aflw2000_3d" / "images").glob("*.jpg"))[:100]:
        shutil.copy(src, out / src.name)
    shutil.copy(example_photo(), out / example_photo().name)
    cap = cv2.VideoCapture(str(DATA / "video" / "side_profile.mp4"))
    for k in range(9):
        cap.set(cv2.CAP_PROP_POS_FRAMES, 120 * k)
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"side_profile.mp4: frame {120 * k} could not be read")
        cv2.imwrite(str(out / f"zz_clip{120 * k:04d}_full.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        small = cv2.resize(frame, (1920, round(frame.shape[0] * 1920 / frame.shape[1])), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(out / f"zz_clip{120 * k:04d}_1920.jpg"), small, [cv2.IMWRITE_JPEG_QUALITY, 95])
    print(f"{len(list(out.iterdir()))} photos in {out}")


if __name__ == "__main__":
    main()
