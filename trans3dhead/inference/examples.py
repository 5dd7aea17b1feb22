"""The example photo shipped with the package (public domain; see
trans3dhead/assets/example_astronaut_LICENSE.txt)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

EXAMPLE_PHOTO = "example_astronaut.jpg"


def example_photo() -> Path:
    """Path of the bundled 512x512 photo of astronaut Eileen Collins (NASA, public domain)."""
    return Path(str(resources.files("trans3dhead.assets").joinpath(EXAMPLE_PHOTO)))
