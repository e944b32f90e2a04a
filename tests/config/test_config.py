"""The run configuration: numbers in the forms people type, renamed keys, eval-set validation, every preset,
every command line of the README."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from radapter.cli.main import build_parser, main, parse_overrides
from radapter.config import PRESET_DIR, ConfigError, load_config, parse_value
from radapter.runs import check_config

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-4", 1e-4), ("1E-4", 1e-4), ("5e-4", 5e-4), (".5", 0.5), ("1_000", 1000.0), ("3", 3.0), ("2.5e+1", 25.0)],
)
def test_floats_take_the_forms_people_type(text, value):
    assert load_config(None, parse_overrides(["--optim.lr", text])).optim.lr == pytest.approx(value)


@pytest.mark.parametrize(("text", "value"), [("1_000", 1000), ("1e3", 1000), ("12", 12)])
def test_integers_take_the_forms_people_type(text, value):
    assert load_config(None, {"optim.steps": parse_value(text)}).optim.steps == value


@pytest.mark.parametrize("text", ["2.5", "1e-3", "ten"])
def test_a_non_integer_is_refused_with_the_key(text):
    with pytest.raises(ConfigError, match="optim.steps: expected an integer"):
        load_config(None, {"optim.steps": parse_value(text)})


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("method.adapter.rank", "method.radapter.rank"),
        ("method.adapter.alpha", "eval.alpha"),
        ("method.lora_r", "method.lora.r"),
        ("method.use_ema", "method.radapter.use_ema"),
        ("data.csv_img_key", "data.csv.img_key"),
        ("data.world_train", "data.world.train"),
    ],
)
def test_an_old_key_names_its_new_place(old, new):
    with pytest.raises(ConfigError, match=f"'{old}' was renamed: use '{re.escape(new)}'"):
        load_config(None, {old: 1})


def test_an_old_key_in_a_yaml_file_names_its_new_place(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("method: {name: radapter, adapter: {rank: 64}}\n")
    with pytest.raises(ConfigError, match=r"old.yaml: config key 'method.adapter' was renamed: use 'method.radapter'"):
        load_config(str(path))


def test_an_eval_set_typo_names_the_entry_and_the_key(tmp_path, capsys, tiny_open_clip_json):
    cfg = load_config(
        "tiny_test", {"data.eval_sets": [{"name": "a", "path": "x"}, {"name": "b", "path": "y", "kidn": "csv"}]}
    )
    with pytest.raises(ConfigError, match=r"unknown config key 'data.eval_sets\[1\].kidn' \(did you mean 'kind'\?\)"):
        check_config(cfg)
    args = ["train", "--config", "tiny_test", "--model", tiny_open_clip_json, "--out", str(tmp_path / "r")]
    assert main([*args, "--data.eval_sets", "[{name: a, path: x, kidn: csv}]"]) == 2
    assert "data.eval_sets[0].kidn" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_lone_eval_set_is_the_id_set_unless_stated():
    from radapter.tasks.classification import eval_set_configs

    assert [s.ood for s in eval_set_configs([{"name": "test", "path": "x"}])] == [False]
    assert [s.ood for s in eval_set_configs([{"name": "a", "path": "x"}, {"name": "b", "path": "y"}])] == [False, True]
    assert [s.ood for s in eval_set_configs([{"name": "a", "path": "x", "ood": True}])] == [True]


@pytest.mark.parametrize("name", sorted(p.stem for p in Path(PRESET_DIR).glob("*.yaml")))
def test_every_preset_loads_and_fits_its_task(name):
    cfg = load_config(name)
    check_config(cfg)


def _readme_commands() -> list[list[str]]:
    """Every ``radapter …`` / ``torchrun … radapter.cli.main …`` line in the README's bash blocks."""
    text = README.read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if " radapter " in f" {line} " and "pip install" not in line:
                words = shlex.split(line.split("&&")[-1].strip())
                if words[0] == "torchrun":
                    words = words[words.index("radapter.cli.main") + 1 :]
                else:
                    words = words[words.index(next(w for w in words if w.endswith("radapter"))) + 1 :]
                out.append(words)
    return out


def test_the_readme_shows_commands():
    assert len(_readme_commands()) >= 8


@pytest.mark.parametrize("argv", _readme_commands(), ids=lambda a: " ".join(a)[:60])
def test_every_readme_command_line_parses_and_resolves(argv):
    """Each command of the README is accepted by the parser, and a train command's preset and overrides
    resolve to a valid config for its task (nothing is trained: the data paths are the README's)."""
    args, extra = build_parser().parse_known_args(argv)
    overrides = parse_overrides(extra)
    if args.command == "train":
        check_config(load_config(args.config, overrides))
    elif args.command == "presets":
        assert main(argv) == 0
