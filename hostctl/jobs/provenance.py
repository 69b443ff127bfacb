"""Where a run comes from: the experiment it belongs to, its parameters, the specs' git revision.

What `hostctl run` records with every run so it can be found, compared and run again: the git
revision and branch of the repository holding the inventory (read with git itself, bounded;
no git or no repository leaves them empty), the experiment (`--experiment`, else that branch,
else the job's name) and the parameters (the spec's env overlaid by the --set values; secrets
are never among them: they reach the container through the root-only env file of its unit,
by name).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hostctl.errors import HostctlError

GIT_TIMEOUT = 5.0  # seconds: a hung git (network filesystem) must not hang `hostctl run`
MAX_EXPERIMENT = 100
MAX_NOTE = 200


@dataclass(frozen=True)
class GitInfo:
    rev: str = ""  # the commit, plus "-dirty" when tracked files differ from it
    branch: str = ""  # "" on a detached head


def _git(folder: str, *args: str) -> str | None:
    try:
        res = subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True,
                             timeout=GIT_TIMEOUT, check=False,
                             env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def git_info(folder: str) -> GitInfo:
    """The revision and branch of the repository holding `folder` (empty outside git)."""
    rev = _git(folder, "rev-parse", "--verify", "-q", "HEAD")
    if not rev:
        return GitInfo()
    branch = _git(folder, "symbolic-ref", "-q", "--short", "HEAD") or ""
    # --quiet exits 1 when tracked files differ: the run did not come from `rev` as it is.
    try:
        dirty = subprocess.run(["git", "-C", folder, "diff", "--quiet", "HEAD", "--"],
                               capture_output=True, timeout=GIT_TIMEOUT, check=False,
                               env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"}).returncode == 1
    except (OSError, subprocess.SubprocessError):
        dirty = False
    return GitInfo(rev + ("-dirty" if dirty else ""), branch)


def experiment_name(given: str | None, git: GitInfo, job: str) -> str:
    """--experiment, else the git branch of the specs (one that --experiment would take:
    it becomes a metrics label), else the job's name."""
    if given:
        return given
    branch = git.branch
    if branch and len(branch) <= MAX_EXPERIMENT and branch.isprintable():
        return branch
    return job


def check_text(option: str, value: str, limit: int) -> str:
    """One printable line, at most `limit` characters (--experiment, --note)."""
    if not value.strip():
        raise HostctlError(f"{option}: give a non-empty text")
    if len(value) > limit:
        raise HostctlError(f"{option}: at most {limit} characters (this one has {len(value)})")
    if any(ch < " " or ch == "\x7f" for ch in value):
        raise HostctlError(f"{option}: one line of printable text (no tabs, newlines or "
                           "control characters)")
    return value


def run_params(spec_env: Mapping[str, str], sets: Mapping[str, str]) -> dict[str, str]:
    """The parameters of a run: the spec's env overlaid by --set (what the container sees)."""
    return dict(sorted({**spec_env, **sets}.items()))


def params_json(params: Mapping[str, str]) -> str:
    """One line (json escapes newlines), as the host keeps it in the run's `params` file."""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class RunOrigin:
    """What `hostctl run` records about where a run comes from, the same for every run (or
    shard) it queues; plan.request adds what belongs to the job and the host."""

    experiment: str = ""
    description: str = ""  # --note
    params: tuple[tuple[str, str], ...] = ()
    git: GitInfo = GitInfo()
    rerun_of: str = ""
    pin_image: str = ""  # --rerun: the image id the first run ran


def unit_env_values(text: str) -> dict[str, str]:
    """A run's unit.env (systemd EnvironmentFile=: KEY=VALUE lines, the value optionally in
    double quotes with backslash escapes) -> {KEY: VALUE}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r'\\(.)', r"\1", value[1:-1])
        out[key.strip()] = value
    return out


def expand_docker_run(argv: Sequence[str], unit_env: str) -> list[str]:
    """The recorded `docker run` argv with the queue's per-run words filled in from the
    run's unit.env, as systemd expands them: `$HOSTCTL_RUN_ARGS` split into words (single
    quotes group), `${HOSTCTL_RUN_IMAGE}` one word. Words unknown stay as they are."""
    values = unit_env_values(unit_env)
    out: list[str] = []
    for word in argv:
        if word == "$HOSTCTL_RUN_ARGS" and "HOSTCTL_RUN_ARGS" in values:
            try:
                out += shlex.split(values["HOSTCTL_RUN_ARGS"])
            except ValueError:
                out.append(word)
        elif word == "${HOSTCTL_RUN_IMAGE}" and values.get("HOSTCTL_RUN_IMAGE"):
            out.append(values["HOSTCTL_RUN_IMAGE"])
        else:
            out.append(word)
    return out
