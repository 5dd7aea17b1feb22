"""Config overrides and YAML values checked against the dataclass tree: a wrong type, a path
through a value, an unknown key or an unknown choice is a one-line Trans3DHeadError naming it."""
from __future__ import annotations

from pathlib import Path

import pytest

from trans3dhead.config import ModelConfig, load_config
from trans3dhead.errors import Trans3DHeadError

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


@pytest.mark.parametrize("override, words", [
    ("train.max_epochs=abc", ["train.max_epochs", "'abc'", "whole number"]),
    ("train.max_epochs=3.5", ["train.max_epochs", "whole number"]),
    ("train.lr=fast", ["train.lr", "expected a number"]),
    ("model.qamem=1", ["model.qamem", "true or false"]),
    ("model.dim=true", ["model.dim", "whole number"]),
    ("data.limit=ten", ["data.limit", "whole number or null"]),
    ("data.exclude=a.csv", ["data.exclude", "list of strings"]),
    ("data.exclude=[1, 2]", ["data.exclude", "list of strings"]),
    ("train.devices=[0, 1]", ["train.devices", "whole number or a string"]),
    ("name.x=3", ["name.x=3", "name is a value"]),
    ("model.dim.x=3", ["model.dim.x=3", "model.dim is a value"]),
    ("model=3", ["model=3", "is a section"]),
    ("nosuch.x=3", ["unknown key 'nosuch'"]),
    ("model.dimm=3", ["unknown key 'dimm'", "dim"]),
    ("model.landmark_source=fusd", ["model.landmark_source='fusd'", "branch, 3dmm, fused"]),
    ("train.seed=[1", ["train.seed=[1", "not valid YAML"]),
    ("train.seed", ["key.path=value"]),
])
def test_bad_override_is_a_one_line_error(override, words):
    with pytest.raises(Trans3DHeadError) as info:
        load_config(TINY, [override])
    message = str(info.value)
    assert "\n" not in message
    for w in words:
        assert w in message, (w, message)


def test_good_overrides_keep_their_types():
    c = load_config(TINY, ["train.devices=2", "train.strategy=ddp", "data.exclude=[]", "train.lr=1e-3",
                           "name=2024", "data.merl_rav_root=null", "model.dropout=1", "model.landmark_source=fused"])
    assert c.train.devices == 2 and c.train.strategy == "ddp" and c.data.exclude == []
    assert c.train.lr == 0.001  # YAML 1.1 reads 1e-3 as text; a number field takes it as the number
    assert c.name == "2024"  # a text field keeps the text as typed
    assert c.data.merl_rav_root is None and c.model.dropout == 1 and c.model.landmark_source == "fused"
    assert load_config(TINY, ["train.devices=auto"]).train.devices == "auto"
    assert load_config(TINY, ["data.exclude=[a.csv, b.csv]"]).data.exclude == ["a.csv", "b.csv"]


def test_yaml_file_values_are_checked_too(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  max_epochs: many\n")
    with pytest.raises(Trans3DHeadError, match=r"train.max_epochs='many': expected a whole number"):
        load_config(bad)
    bad.write_text("name:\n  x: 3\n")
    with pytest.raises(Trans3DHeadError, match=r"config name=\{'x': 3\}: expected a string"):
        load_config(bad)
    bad.write_text("model:\n  landmark_source: fusd\n")
    with pytest.raises(Trans3DHeadError, match="must be one of branch, 3dmm, fused"):
        load_config(bad)


def test_model_config_rejects_an_unknown_landmark_source_however_built():
    with pytest.raises(Trans3DHeadError, match="fusd"):
        ModelConfig(landmark_source="fusd")
    for bad in (0.0, 1.5):
        with pytest.raises(Trans3DHeadError, match="branch_weight"):
            ModelConfig(landmark_source="fused", branch_weight=bad)


def test_train_command_reports_a_bad_override_in_one_line(run_cli):
    code, out, err = run_cli("train", "--config", TINY, "train.max_epochs=abc")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == ["trans3dhead: error: config train.max_epochs='abc': expected a whole number, "
                                        "got str"]
