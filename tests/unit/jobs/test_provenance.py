"""Where a run comes from: git revision and branch of the specs (a real git repository),
the experiment's default, the parameters and the text options' rules."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from hostctl.jobs import provenance as PV
from tests.rigs.refusals import refusal


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "exp/lr-sweep")
    _git(tmp_path, "config", "user.email", "t@example.org")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "site.yml").write_text("site: x\n")
    _git(tmp_path, "add", "site.yml")
    _git(tmp_path, "commit", "-q", "-m", "first")
    (tmp_path / "specs").mkdir()
    return tmp_path


def test_git_info_reads_revision_and_branch(repo: Path) -> None:
    info = PV.git_info(str(repo / "specs"))
    assert info == PV.GitInfo(_git(repo, "rev-parse", "HEAD"), "exp/lr-sweep")
    assert PV.experiment_name(None, info, "train") == "exp/lr-sweep"
    assert PV.experiment_name("baseline", info, "train") == "baseline"


def test_a_changed_tracked_file_marks_the_revision_dirty(repo: Path) -> None:
    (repo / "site.yml").write_text("site: y\n")
    assert PV.git_info(str(repo)).rev == _git(repo, "rev-parse", "HEAD") + "-dirty"


def test_detached_head_has_no_branch(repo: Path) -> None:
    _git(repo, "checkout", "-q", "--detach")
    info = PV.git_info(str(repo))
    assert info.branch == "" and info.rev == _git(repo, "rev-parse", "HEAD")
    assert PV.experiment_name(None, info, "train") == "train"


def test_outside_git_everything_is_empty(tmp_path: Path) -> None:
    assert PV.git_info(str(tmp_path)) == PV.GitInfo()
    assert PV.experiment_name(None, PV.GitInfo(), "train-triage") == "train-triage"


def test_params_are_the_spec_env_overlaid_by_set_values_on_one_line() -> None:
    params = PV.run_params({"LR": "0.1", "EPOCHS": "3"}, {"LR": "0.01", "NOTE": "a\nb"})
    assert params == {"EPOCHS": "3", "LR": "0.01", "NOTE": "a\nb"}
    text = PV.params_json(params)
    assert "\n" not in text and json.loads(text) == params


@pytest.mark.parametrize(("value", "message"), [
    ("", "--note: give a non-empty text"),
    ("   ", "--note: give a non-empty text"),
    ("x" * 201, "--note: at most 200 characters (this one has 201)"),
    ("two\nlines", "--note: one line of printable text (no tabs, newlines or control "
                   "characters)"),
    ("tab\there", "--note: one line of printable text (no tabs, newlines or control "
                  "characters)"),
])
def test_text_options_refused(value: str, message: str) -> None:
    assert refusal(PV.check_text, "--note", value, 200) == message


def test_text_option_accepted() -> None:
    assert PV.check_text("--note", "lr sweep, warm restarts é", 200) == "lr sweep, warm restarts é"


def test_a_branch_no_experiment_could_be_named_after_falls_back_to_the_job() -> None:
    assert PV.experiment_name(None, PV.GitInfo("abc", "x" * 101), "train") == "train"
    assert PV.experiment_name(None, PV.GitInfo("abc", "x" * 100), "train") == "x" * 100
