"""Every documented example is true: each ```python block of README.md and docs/*.md runs as a
user would paste it (a fresh namespace, the repository root as working directory, against the
bundled photo and the shared data beside the clone), and each `trans3dhead ...` command in a
```bash block parses with the real argument parser; the cheap ones (info, predict on the bundled
photo) also run, into a temporary folder."""
from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
from conftest import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
BUNDLED_PHOTO = "trans3dhead/assets/example_astronaut.jpg"


def blocks(language: str) -> list[tuple[str, str]]:
    """(id "file:line", code) of every fenced block in that language."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for m in FENCE.finditer(text):
            if m.group(1) == language:
                line = text.count("\n", 0, m.start()) + 1
                found.append((f"{doc.relative_to(REPO_ROOT)}:{line}", m.group(2)))
    return found


def commands(code: str) -> list[str]:
    """The `trans3dhead ...` commands of a shell block: continuation lines joined, `&&` chains split,
    comments dropped."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if words and words[0] == "trans3dhead":
                out.append(shlex.join(words))
    return out


PYTHON = blocks("python")
COMMANDS = [(f"{where} {cmd}", cmd) for where, code in blocks("bash") for cmd in commands(code)]


def test_the_docs_have_examples_to_check():
    """A broken extractor would make every test below vacuous."""
    where = {w.split(":")[0] for w, _ in PYTHON}
    assert {"README.md", "docs/predict.md", "docs/output_schema.md"} <= where
    assert len(COMMANDS) >= 15
    assert any(c.startswith("trans3dhead predict " + BUNDLED_PHOTO) for _, c in COMMANDS)
    assert commands("pip install x && trans3dhead info --json  # card\ntrans3dhead evaluate \\\n  --model a\n") == [
        "trans3dhead info --json", "trans3dhead evaluate --model a"]


@pytest.mark.parametrize("code", [c for _, c in PYTHON], ids=[w for w, _ in PYTHON])
def test_python_block_runs_as_pasted(code, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    namespace = {"__name__": "__main__"}
    exec(compile(code, "<doc block>", "exec"), namespace)


@pytest.mark.parametrize("command", [c for _, c in COMMANDS], ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(command):
    from trans3dhead.cli import build_parser

    args = build_parser().parse_args(shlex.split(command)[1:])  # argparse exits (a failure) on a bad option
    assert callable(args.func)


SCRIPTS = sorted({w for _, code in blocks("bash") for line in code.replace("\\\n", " ").splitlines()
                  for w in shlex.split(line, comments=True)[1:2]
                  if shlex.split(line, comments=True)[:1] == ["python"] and w.startswith(("scripts/", "benchmarks/"))})


def test_documented_scripts_exist():
    assert "scripts/fetch_animal_images.py" in SCRIPTS
    assert [s for s in SCRIPTS if not (REPO_ROOT / s).is_file()] == []


def _cheap(command: str) -> bool:
    words = shlex.split(command)
    return words[1] == "info" and "--model" not in words[2:] or (
        words[1] == "info" and words[words.index("--model") + 1] in ("trans3dhead", "trans3dhead-large", "3ddfa-mb05")) or (
        words[1] == "predict" and words[2] == BUNDLED_PHOTO and "--backend" not in words)


CHEAP = [(w, c) for w, c in COMMANDS if _cheap(c)]


def test_some_documented_commands_are_run():
    kinds = {shlex.split(c)[1] for _, c in CHEAP}
    assert kinds == {"info", "predict"}, CHEAP


@pytest.mark.parametrize("command", [c for _, c in CHEAP], ids=[w for w, _ in CHEAP])
def test_cheap_documented_command_runs(command, run_cli, tmp_path, monkeypatch):
    """info prints the card; predict on the bundled photo writes what the docs say, into tmp_path."""
    monkeypatch.chdir(REPO_ROOT)
    words = shlex.split(command)[1:]
    if words[0] == "predict":
        out = tmp_path / "out"
        words[words.index("-o") + 1] = str(out)
        code, _, err = run_cli(*words, "--threads", "1", "--quiet")
        assert code == 0, err
        doc = json.loads((out / "example_astronaut.json").read_text())
        assert doc["schema_version"] == 3 and len(doc["faces"]) == 1
        assert set(doc["faces"][0]["pose"]) == {"yaw", "pitch", "roll", "rotation", "quaternion_wxyz",
                                                "rotation_vector", "scale", "translation"}
        if "--mesh" in words:
            assert doc["meshes"] == ["example_astronaut_face0.obj"] and (out / "example_astronaut_face0.obj").is_file()
        if "--render" in words:
            assert (out / "example_astronaut_overlay.png").is_file()
        assert sorted(os.listdir(out)) == sorted(
            ["example_astronaut.json"] + (["example_astronaut_face0.obj"] if "--mesh" in words else [])
            + (["example_astronaut_overlay.png"] if "--render" in words else []))
    else:
        code, out, err = run_cli(*words)
        assert code == 0, err
        if "--json" in words:
            card = json.loads(out)
            assert card["model"] in ("trans3dhead", "trans3dhead-large", "3ddfa-mb05") and card["parameters"] > 0
        else:
            assert out.startswith("model: ")


@pytest.mark.parametrize("model,row_start", [("trans3dhead", "| Trans3DHead default"),
                                             ("trans3dhead-large", "| Trans3DHead large")])
def test_readme_results_table_matches_the_model_card(run_cli, model, row_start):
    """The README's front-page figures for each shipped Trans3DHead model are the ones its model
    card records."""
    code, out, _ = run_cli("info", "--model", model, "--json")
    assert code == 0
    figures = json.loads(out)["aflw2000_3d"]
    readme = (REPO_ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith(row_start))
    cells = [c.strip().strip("*") for c in row.strip("|").split("|")]
    assert [float(c) for c in cells[1:4]] == [figures["package_protocol"]["nme_mean_of_bins"],
                                              figures["package_protocol"]["nme_all"], figures["pose_mae_deg"]]
    assert f"{figures['3ddfa_protocol']['nme_mean_of_bins']:.3f}" in readme
