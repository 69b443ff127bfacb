"""The inventory's `jobs:` section (exact messages), how keep_runs reaches the host's
host.conf, and the submit fields a run request writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostctl.errors import ConfigError
from hostctl.jobs import host_files as HF
from hostctl.jobs import hostside as H
from hostctl.render.site import jobs_files
from hostctl.validate import load_site

INVENTORY = """\
site: t
hosts:
  h: {address: 10.0.0.1, docker: /opt/docker/bin/docker}
specs: [specs/*.yml]
"""


def _site(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "a.yml").write_text("kind: job\nname: t\nproject: p\nimage: x:1\n")
    (tmp_path / "site.yml").write_text(INVENTORY + extra)
    return tmp_path / "site.yml"


@pytest.mark.parametrize(("extra", "messages"), [
    ("jobs:\n  keep_runs: 0\n", ["site.yml:6: jobs/keep_runs: must be at least 1, got 0"]),
    ("jobs:\n  keep_runs: 100001\n",
     ["site.yml:6: jobs/keep_runs: must be at most 100000, got 100001"]),
    ("jobs:\n  keep_runs: '500'\n",
     ["site.yml:6: jobs/keep_runs: expected a whole number, got '500'"]),
    ("jobs:\n  keep_runs: true\n",
     ["site.yml:6: jobs/keep_runs: expected a whole number, got a boolean (true)"]),
    ("jobs:\n  keep_runs: 2.5\n",
     ["site.yml:6: jobs/keep_runs: expected a whole number, got a number (2.5)"]),
    ("jobs: {keeps: 3}\n", ["site.yml:5: jobs/keeps: unknown key 'keeps'; did you mean "
                            "'keep_runs'? (known: keep_runs)"]),
    ("jobs: 5\n", ["site.yml:5: jobs: expected a mapping, got a number (5)"]),
])
def test_bad_jobs_sections_give_exact_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               extra: str, messages: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_site(str(_site(tmp_path, extra)), environ={})
    assert [str(p) for p in info.value.problems] == messages


@pytest.mark.parametrize(("extra", "keep"), [("", 500), ("jobs:\n", 500), ("jobs: {}\n", 500),
                                             ("jobs: {keep_runs: 7}\n", 7)])
def test_keep_runs_and_the_docker_path_reach_the_hosts_conf(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, keep: int) -> None:
    monkeypatch.chdir(tmp_path)
    site = load_site(str(_site(tmp_path, extra)), environ={})
    assert site.inventory.jobs.keep_runs == keep
    conf = {f.path: f.content for f in jobs_files(site, site.inventory.hosts["h"])}[
        "/var/lib/hostctl/gpu/host.conf"]
    assert conf.endswith(f"mode=nvidia\ndeclared=\ndocker=/opt/docker/bin/docker\n"
                         f"keep_runs={keep}\n".encode())
    # `hostctl run` writes the same bytes (no fight with deploy)
    host = site.inventory.hosts["h"]
    assert HF.gpu_conf_text(HF.gpu_config(host, site.inventory.jobs.keep_runs)) == conf


def test_submit_writes_the_experiment_fields_only_when_set() -> None:
    bare = H.RunRequest("r1", "train", "lab", "h", "u")
    assert set(bare.fields()) == {"job", "project", "host", "unit", "need", "cpus", "memory",
                                  "attempts", "attempt", "group", "shard", "shards", "by",
                                  "priority"}
    full = H.RunRequest("r2", "train", "lab", "h", "u", experiment="main",
                        description="try\nlower LR", params_json='{"LR": "0.1"}',
                        image="lab/app:1", spec_hash="abc", git_rev="f00", git_branch="main",
                        rerun_of="r1", docker_run_json='["docker", "run"]', pin_image="sha256:1")
    fields = full.fields()
    assert {k: fields[k] for k in set(fields) - set(bare.fields())} == {
        "experiment": "main", "description": "try lower LR", "params": '{"LR": "0.1"}',
        "image": "lab/app:1", "spec_hash": "abc", "git_rev": "f00", "git_branch": "main",
        "rerun_of": "r1", "docker_run": '["docker", "run"]', "pin_image": "sha256:1"}
    text = H.script(H.submit_lines([full]))
    assert "printf '%s\\n' 'try lower LR' > /var/lib/hostctl/runs/.new-r2/description\n" in text
    assert "printf '%s\\n' '[\"docker\", \"run\"]' > /var/lib/hostctl/runs/.new-r2/docker_run\n" \
        in text


@pytest.mark.parametrize("bad", ["a b", "../x", "A1", "", "x*"])
def test_points_and_show_take_run_ids_only(bad: str) -> None:
    with pytest.raises(ValueError):
        H.points_lines([bad])
    with pytest.raises(ValueError):
        H.show_lines(bad)
