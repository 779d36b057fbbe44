"""Bad command-line values and configs: one line, a non-zero exit, nothing written."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from calosim.cli import cli
from calosim.errors import CalosimError
from calosim.training.run import apply_overrides, load_config, resolve_config

CONFIG = Path(__file__).parents[2] / "configs" / "zdc" / "e2e_sae.yaml"


@pytest.mark.parametrize("args", [
    ["simulate", "--n", "5", "--out", ""],
    ["generate", "--model", "mc", "--particles", "p.h5", "--out", " "],
    ["train", str(CONFIG), "--out", ""],
    ["split", "zn.h5", "--out-dir", ""],
])
def test_an_empty_output_name_is_refused(run, tmp_path: Path, assert_one_line_error,
                                         args: list[str]) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = run(*args)
    finally:
        os.chdir(cwd)
    assert_one_line_error(result, "an empty name is not a path")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("option", "value", "mentions"), [
    ("--seed", "-1", "--seed"),
    ("--seed", str(2**64), "--seed"),
    ("--min-photons", "nan", "not a finite number"),
    ("--min-photons", "inf", "not a finite number"),
    ("--n", "1e3", "--n"),
])
def test_bad_option_values_are_one_line(run, tmp_path: Path, assert_one_line_error,
                                        option: str, value: str, mentions: str) -> None:
    out = tmp_path / "zn.h5"
    args = ["simulate", "--out", out, option, value]
    if option != "--n":
        args += ["--n", "5"]
    result = run(*args)
    assert_one_line_error(result, mentions, "simulate --help")
    assert result.exit_code == 2
    assert not out.exists()


def test_a_yaml_alias_bomb_is_refused_at_once(run, tmp_path: Path, assert_one_line_error) -> None:
    config = tmp_path / "bomb.yaml"
    lines = ["model: {name: e2e_sae}", 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol"]']
    for a, b in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]")
    config.write_text("\n".join(lines) + "\n")
    began = time.monotonic()
    result = run("train", config, "--data", tmp_path / "zn.h5", "--out", tmp_path / "run")
    assert time.monotonic() - began < 10
    assert_one_line_error(result, "aliases", "line 3")
    assert len(result.stderr) < 300
    assert not (tmp_path / "run").exists()


def test_a_nan_learning_rate_is_refused_before_the_run_starts(run, simulated, tmp_path: Path,
                                                              assert_one_line_error) -> None:
    result = run("train", CONFIG, "training.learning_rate=.nan", "--data", simulated,
                 "--out", tmp_path / "run")
    assert_one_line_error(result, "training.learning_rate", "finite")
    assert not (tmp_path / "run").exists()


def test_a_huge_override_value_gives_a_short_error(run, simulated, tmp_path: Path,
                                                   assert_one_line_error) -> None:
    result = run("train", CONFIG, "model.activation=" + "x" * 100_000, "--data", simulated,
                 "--out", tmp_path / "run")
    assert_one_line_error(result, "model.activation")
    assert len(result.stderr) < 1000


YAML_TEXT = st.lists(st.sampled_from([*"abz:{}[]&*!|>-,.'\"#\n 019e_", "model", "name",
                                      "training", "epochs", ".nan", "e2e_sae", "\t"]),
                     max_size=30).map("".join)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(text=YAML_TEXT)
def test_any_config_text_is_a_config_or_one_calosim_error(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("config") / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        resolve_config(load_config(path))
    except CalosimError as error:
        assert "\n" not in str(error) and len(str(error)) < 2000


@settings(max_examples=150, deadline=None, derandomize=True)
@given(overrides=st.lists(YAML_TEXT.map(lambda t: t.replace("\n", " ")), max_size=4))
def test_any_overrides_give_a_config_or_one_calosim_error(overrides: list[str]) -> None:
    try:
        resolve_config(apply_overrides(load_config(CONFIG), overrides))
    except CalosimError as error:
        assert "\n" not in str(error) and len(str(error)) < 2000


ARGUMENT = st.sampled_from(["", " ", "-1", "0", "3", "1e3", "nan", "inf", "2" * 30, "x",
                            "--n", "--seed", "--out", "--min-photons", "--particles",
                            "--batch-size", "--no-progress", "--simulator", "mc"])


@settings(max_examples=80, deadline=None, derandomize=True)
@given(arguments=st.lists(ARGUMENT, max_size=8))
def test_any_simulate_arguments_run_or_give_one_line(tmp_path_factory,
                                                     arguments: list[str]) -> None:
    directory = tmp_path_factory.mktemp("args")
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        result = CliRunner().invoke(cli, ["simulate", *arguments, "--out", "zn.h5",
                                          "--no-progress"], catch_exceptions=False)
    finally:
        os.chdir(cwd)
    if result.exit_code != 0:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert [p.name for p in directory.iterdir()] == []
