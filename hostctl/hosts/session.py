"""The session every command that talks to hosts opens: runners to the chosen hosts, and who
is acting as which run, for the lock record and the audit records. Status, the day-two
actions, jobs, the gateway, releases, the handoff steps and deploy (hostctl.deploy.run.Deploy
holds one) all connect through it.
"""

from __future__ import annotations

import functools
import getpass
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from hostctl.hosts import early
from hostctl.hosts import scripts as S
from hostctl.hosts.lock import lock_record
from hostctl.hosts.progress import Progress, quiet
from hostctl.runner.base import Runner, RunnerError, default_known_hosts
from hostctl.runner.pool import open_runners
from hostctl.spec import model as m


def runner_for(host: m.Host) -> Runner:
    """The runner of `host`: the connection opened for it while the command started
    (hosts.early), or a new one."""
    opened = early.take(host)
    return opened if opened is not None else ssh_runner(host)


def ssh_runner(host: m.Host) -> Runner:
    """The runner for `host` as its inventory's ssh settings say: through the connection
    keeper when `ssh.persist` is set (runner.persist_client), else a connection of its own."""
    settings: dict[str, Any] = {
        "host": host.name, "address": host.ssh_address, "port": host.ssh.port,
        "user": host.ssh.user,
        "key_path": os.path.abspath(os.path.expanduser(host.ssh.key or "~/.ssh/id_ed25519")),
        "connect_timeout": host.ssh.connect_timeout,
        # absolute: the connection keeper (ssh.persist) works from /
        "known_hosts": os.path.abspath(host.ssh.known_hosts or default_known_hosts()),
        "strict": False,
    }
    if host.ssh.persist > 0:
        # imported here: only hosts kept connected use it (start-up)
        from hostctl.runner.persist_client import PersistentRunner

        return PersistentRunner(settings, host.ssh.persist)
    # imported here, on the first connect: paramiko is a large part of start-up
    from hostctl.runner.ssh import SSHRunner

    return SSHRunner(**settings)


def who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def spec_revision(inventory_file: str) -> str | None:
    """The git revision of the specs, with `+dirty` when there are uncommitted changes."""
    where = os.path.dirname(os.path.abspath(inventory_file))
    try:
        rev = subprocess.run(["git", "-C", where, "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def command_line() -> str:
    return "hostctl " + " ".join(sys.argv[1:])


class Session:
    """Runners to some of the site's hosts, and who acts as which run: the run id, the
    lock record, the specs' revision and what every audit record of the run says."""

    def __init__(self, site: m.Site, hosts: Iterable[str] | None, command: str,
                 factory: Callable[[m.Host], Runner] = runner_for,
                 progress: Progress = quiet):
        self.site = site
        self.command = command
        self.factory = factory
        self.progress = progress
        self.run_id = uuid.uuid4().hex[:8]
        self.started = time.time()
        self.who = who()
        self.lock_record = lock_record(self.who, self.run_id, self.started, command)
        chosen = None if hosts is None else frozenset(hosts)
        self.hosts = [h for h in site.inventory.hosts.values()
                      if chosen is None or h.name in chosen]
        self.runners: dict[str, Runner | RunnerError] = {}
        self.locked: set[str] = set()  # the hosts whose lock this run holds (until finish)

    @functools.cached_property
    def revision(self) -> str | None:
        """The specs' git revision, asked once per run (every host's records share it).

        Asked where the specs are: the inventory may live elsewhere (`sandbox up` writes its
        copy into a state folder) and point at specs kept in a repository."""
        files = sorted({w.file for w in self.site.workloads if w.file})
        return spec_revision(files[0] if files else self.site.inventory.file)

    @contextmanager
    def connected(self) -> Iterator[Session]:
        """Runners to the session's hosts (a host that cannot be reached gets its error in
        place of a runner), closed at the end."""
        by_name = {h.name: h for h in self.hosts}
        for h in self.hosts:
            self.progress(h.name, "connect", "")
        with open_runners(list(by_name), lambda n: self.factory(by_name[n])) as runners:
            self.runners = runners
            yield self

    def audit_base(self) -> dict[str, Any]:
        """What every audit record of this run says: who ran what, as which run, where."""
        return {"who": self.who, "command": self.command, "run": self.run_id,
                "site": self.site.inventory.site}

    def finish(self, runner: Runner, audit_record: Mapping[str, object],
               protect: Sequence[str] = (), verified: str | None = None) -> str:
        """Append `audit_record` to the host's log, prune old releases (not `protect`) and
        release the run's lock, in one round trip. What the run's outcome should add ("" if
        nothing): the lock kept or not released."""
        script = S.finish_script(self.lock_record, audit_record, protect=protect,
                                 verified=verified)
        try:
            res = runner.run(["sh", "-s"], stdin=script.encode(), timeout=60)
        except RunnerError as exc:
            return f" (could not release the lock: {exc})"
        self.locked.discard(runner.host)
        if "@@lock kept" in res.stdout:
            return (" (its apply was still running on the host 30 s after the "
                    "connection dropped: the lock is kept; once it has ended, "
                    "deploy again with --force-unlock)")
        return ""


@contextmanager
def session(site: m.Site, hosts: Iterable[str] | None) -> Iterator[Session]:
    """Runners to `hosts` (None: all) for a command that acts on them without planning a
    deploy (status, logs, start/stop/restart, jobs, releases, gateway, handoff steps):
    deploy's connections, lock record, run id and audit fields."""
    with Session(site, hosts, command_line()).connected() as s:
        yield s
