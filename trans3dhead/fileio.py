"""Atomic file writes: write to a temporary name in the same folder, then rename, so a killed
process never leaves a half-written output."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


class AtomicOutput:
    """A streamed output written under a temporary name (``self.tmp``): close() renames it into
    place, abort() (or an exception inside a with-block) removes it. Subclasses open their handle
    on ``self.tmp`` and release it in ``_release``."""

    def __init__(self, path, suffix: str | None = None):
        self.path = Path(path)
        self._ctx = atomic_path(self.path, suffix=suffix)
        self.tmp = self._ctx.__enter__()

    def _release(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._release()
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        self._release()
        try:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
        except RuntimeError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
