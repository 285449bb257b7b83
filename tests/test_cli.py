"""The command line: help lists the subcommands, user mistakes give one line and a non-zero exit."""

import subprocess
import sys

import pytest

from analysis_lib.cli import main
from analysis_lib.config import ConfigError, load_config


def _run(*args):
    return subprocess.run([sys.executable, "-m", "analysis_lib", *args], capture_output=True,
                          text=True)


def test_help_lists_subcommands():
    out = _run("--help")
    assert out.returncode == 0
    for sub in ("dataset", "train-cnn", "train-gbdt", "jam", "book"):
        assert sub in out.stdout


@pytest.mark.parametrize("sub", ["dataset", "train-cnn", "train-gbdt", "jam", "book"])
def test_each_subcommand_has_help(sub):
    out = _run(sub, "--help")
    assert out.returncode == 0 and "--profile" in out.stdout


def test_dataset_help_names_the_safety_flags():
    text = build_parser_help("dataset")
    assert "--force" in text and "--allow-failures" in text


def build_parser_help(sub: str) -> str:
    from analysis_lib.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[sub].format_help()


@pytest.mark.parametrize("args, fragment", [
    (["train-cnn", "--bogus"], "unrecognized arguments: --bogus"),
    (["dataset", "--profile", "nope"], "invalid choice: 'nope'"),
    (["dataset", "--set", "foo.bar=1"], "unknown configuration key 'foo'"),
    (["dataset", "--set", "cnn.epochs"], "not of the form section.key=value"),
    (["dataset", "--source", "tng"], "--source tng needs --cutouts"),
    (["train-cnn", "--dataset", "/nonexistent/x.h5", "--experiments", "all"], "/nonexistent/x.h5"),
])
def test_user_errors_are_one_line(args, fragment):
    out = _run(*args)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.strip().splitlines() if ln]
    assert len(lines) == 1, out.stderr
    assert fragment in lines[0]
    assert "Traceback" not in out.stderr


def test_overrides_are_typed_and_recorded():
    cfg = load_config("smoke", ["cnn.epochs=3", "observe.image_sizes=[60, 20]"])
    assert cfg["cnn"]["epochs"] == 3 and cfg["observe"]["image_sizes"] == [60, 20]
    assert cfg["profile"] == "smoke"
    with pytest.raises(ConfigError):
        load_config("smoke", {"cnn.nonsense": 1})


def test_profiles_differ_only_by_data():
    smoke, quick, paper = (load_config(p) for p in ("smoke", "quick", "paper"))
    assert set(smoke) == set(quick) == set(paper)
    assert smoke["data"]["n_galaxies"] < quick["data"]["n_galaxies"] < paper["data"]["n_galaxies"]
    assert paper["cnn"]["epochs"] == 200 and paper["observe"]["image_size"] == 300


def test_main_returns_nonzero_on_bad_dataset(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_text("garbage")
    code = main(["train-gbdt", "--profile", "smoke", "--dataset", str(bad), "--experiments",
                 "all"])
    assert code == 2
    assert "bad.h5" in capsys.readouterr().err


def test_no_number_in_a_profile_is_read_as_a_string():
    """YAML reads 1.0e10 (no exponent sign) as a string: every such value must be a number."""
    import re

    def leaves(node, path=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from leaves(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from leaves(v, f"{path}[{i}]")
        else:
            yield path, node

    for profile in ("smoke", "quick", "paper"):
        for path, value in leaves(load_config(profile)):
            if isinstance(value, str):
                assert not re.fullmatch(r"[-+]?\d+(\.\d*)?([eE][-+]?\d+)?(\s*#.*)?", value), path
