"""What the README's first Quick-start install gives (`pip install -e .`, no extras): the ONNX
backend works for trans3dhead and trans3dhead-large, which ship their exports; only exporting (and
so the reference 3ddfa-mb05 on the onnx backend) needs the `export` extra, and without it that is a
one-line error, exit 2. The extras are hidden from a subprocess
by an import hook, as if they were not installed."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

HIDE_EXTRAS = """
import sys
class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('onnx', 'onnxscript', 'lightning', 'trimesh'):
            raise ModuleNotFoundError(f"No module named '{name}'")
        return None
sys.meta_path.insert(0, _Hide())
sys.argv = ['trans3dhead'] + sys.argv[1:]
from trans3dhead.cli import main
sys.exit(main())
"""


def _run(*args, tmp_path):
    return subprocess.run([sys.executable, "-c", HIDE_EXTRAS, *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=300)


@pytest.mark.parametrize("model", ["trans3dhead", "trans3dhead-large"])
def test_onnx_backend_without_the_export_extra(model, tmp_path):
    out = tmp_path / "out"
    proc = _run("predict", "trans3dhead/assets/example_astronaut.jpg", "-o", str(out), "--backend", "onnx",
                "--model", model, "--quiet", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "example_astronaut.json").read_text())
    assert doc["backend"] == "onnx" and doc["model"] == model and len(doc["faces"]) == 1


def test_reference_on_onnx_without_the_export_extra_is_one_line(tmp_path):
    out = tmp_path / "out"
    proc = _run("predict", "trans3dhead/assets/example_astronaut.jpg", "-o", str(out), "--model", "3ddfa-mb05",
                "--quiet", tmp_path=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs the 'export' extra" in lines[0] and "backend 'torch'" in lines[0], lines
    assert not out.exists() or not list(out.iterdir())


def test_export_without_the_extra_is_one_line(tmp_path):
    proc = _run("export-onnx", "-o", str(tmp_path / "m.onnx"), tmp_path=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "trans3dhead: error: exporting to ONNX needs the 'export' extra: pip install 'trans3dhead[export]'"), lines
    assert not (tmp_path / "m.onnx").exists()
