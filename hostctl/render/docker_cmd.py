"""Docker command lines, built as argv lists by pure functions (no I/O here).

Limits go on `docker run` because the container is created by dockerd, not as a child of
the unit: a unit's MemoryMax= would not bind it. No `--restart`: systemd restarts.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from hostctl.spec import model as m
from hostctl.spec.hashing import spec_hash
from hostctl.spec.placement import Instance

LABEL = "io.hostctl"
ENV_DIR = "/etc/hostctl/env"
# Where the run queue's helper writes a GPU service's leased devices (hostctl-jobs.sh
# lease_service), read by its unit with EnvironmentFile=-.
GPU_ENV_DIR = "/var/lib/hostctl/svc"
GPU_ARGS = "$HOSTCTL_GPU_ARGS"


class Raw(str):
    """A word hostctl builds itself from validated names that carries a systemd specifier
    (such as %i, the run id) or a $VARIABLE the unit sets: written as is, while every other
    word is escaped."""


# Not hashed: where a spec came from, and its route, which only the gateway reads: editing
# a route must not restart the containers behind it.
def network_name(project: str) -> str:
    """Each project's containers share one Docker network, apart from other projects'."""
    return f"hostctl-{project}"


def volume_source(w: m.Workload, source: str) -> str:
    """Named volumes are scoped to the project, so two projects' `data` never meet."""
    return source if source.startswith("/") else f"hostctl-{w.project}-{source}"


def env_file_path(w: m.Workload) -> str:
    return f"{ENV_DIR}/{w.name}.env"


def job_env_in_file(w: m.Workload) -> bool:
    """A job passes its spec's env in its env file, not as --env flags: Docker lets --env
    override every --env-file, and a run's --set values (its own env file, read after the
    job's) must override the spec's env."""
    return w.is_job


def labels(w: m.Workload, site: str, extra: dict[str, str]) -> list[str]:
    values = {
        f"{LABEL}.managed": "true",
        f"{LABEL}.site": site,
        f"{LABEL}.project": w.project,
        f"{LABEL}.workload": w.name,
        f"{LABEL}.kind": w.kind,
        f"{LABEL}.spec-hash": spec_hash(w),
        **extra,
    }
    return [arg for k, v in sorted(values.items()) for arg in ("--label", f"{k}={v}")]


def resource_args(r: m.Resources) -> list[str]:
    """CPU and memory limits. GPUs are never a count here: a service or run gets specific
    devices from the host's lease table (GPU_ARGS, a job's $HOSTCTL_RUN_ARGS)."""
    args: list[str] = []
    if r.cpus is not None:
        args += ["--cpus", cpus_text(r.cpus)]
    if r.memory is not None:
        args += ["--memory", f"{r.memory}b"]
    return args


def cpus_text(cpus: float) -> str:
    """`0.5`, `2`, `0.000000001`: decimal, never `1e-09` (Docker reads it with big.Rat)."""
    return f"{cpus:.9f}".rstrip("0").rstrip(".")


def health_args(h: m.Health | None) -> list[str]:
    """Docker's own health options, for command checks (http/tcp are probed from the host)."""
    if h is None or h.command is None:
        return []
    return [
        "--health-cmd", health_cmd_word(h.command),
        "--health-interval", go_duration(h.interval),
        "--health-timeout", go_duration(h.timeout),
        "--health-retries", str(h.retries),
        "--health-start-period", go_duration(h.start_period),
    ]


def go_duration(seconds: float) -> str:
    """A duration as Go's time.ParseDuration (Docker's --health-* flags) reads it: a whole
    number and one unit, exact to the nanosecond (`12d` -> `1036800s`, `1.5s` -> `1500ms`).
    Never `1.0368e+06s`, which Go refuses."""
    nanos = round(seconds * 1e9)
    for unit, size in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if nanos % size == 0:
            return f"{nanos // size}{unit}"
    return f"{nanos}ns"


def health_cmd_word(command: Sequence[str]) -> str:
    """Docker runs --health-cmd with `/bin/sh -c`: the words, each quoted for the shell."""
    return shlex.join(command)


# What a container prints reaches the journal once, as its unit's: the unit's `docker run`
# client is attached, and systemd journals what it prints, where `journalctl -u`, `systemctl
# status` and `hostctl logs` read it. Docker's journald driver would write every line a
# second time, under docker.service and its one rate limit, at several times the CPU
# (bench/log_copies.py), and a flood would push the unit's own copy out of a size-bound
# journal first. So Docker keeps none (`docker logs` shows nothing for these containers).
UNIT_JOURNAL = ("--log-driver", "none")


def common_run_args(w: m.Workload, secrets_file: bool,
                    log: Sequence[str] = UNIT_JOURNAL, env_flags: bool = True) -> list[str]:
    """Arguments shared by services and jobs, after the name and labels. `log`: the logging
    options (hostctl.observability.log_args: gelf with a logging section). Without
    `env_flags` the spec's env is left to the env file (a job's: see job_env_in_file)."""
    args = ["--network", network_name(w.project), *log]
    if secrets_file:
        args += ["--env-file", env_file_path(w)]
    for key, value in (w.env.items() if env_flags else ()):
        args += ["--env", f"{key}={value}"]
    for v in w.volumes:
        mount = f"{volume_source(w, v.source)}:{v.target}" + (":ro" if v.read_only else "")
        args += ["--volume", mount]
    args += resource_args(w.resources)
    return args


def command_tail(w: m.Workload) -> tuple[list[str], list[str]]:
    """(entrypoint args before the image, words after the image), as Kubernetes reads them:
    `command` replaces the image's entrypoint, `args` its default arguments."""
    before: list[str] = []
    after: list[str] = []
    if w.command:
        before = ["--entrypoint", w.command[0]]
        after = list(w.command[1:])
    after += list(w.args)
    return before, after


def service_run_argv(inst: Instance, site: str, verb: str = "run",
                     log: Sequence[str] = UNIT_JOURNAL) -> list[str]:
    """`docker run` (or `docker create`, same arguments) for one service instance."""
    w = inst.workload
    argv = [inst.host.docker, verb, "--rm", "--name", inst.name]
    argv += labels(w, site, {f"{LABEL}.instance": str(inst.index), f"{LABEL}.host": inst.host.name})
    argv += common_run_args(w, bool(w.secrets), log)
    if w.resources.gpus:
        # `--gpus '"device=..."'` (or, on a test host, an --env naming the devices), as
        # lease_service wrote it: the unit splits the variable into words.
        argv.append(Raw(GPU_ARGS))
    for pname, port in w.ports.items():
        host_port = inst.host_port(pname)
        if host_port is not None:
            bind = f"{port.bind}:" if port.bind else ""
            argv += ["--publish", f"{bind}{host_port}:{port.container}/{port.protocol}"]
    argv += health_args(w.health)
    before, after = command_tail(w)
    return argv + before + [w.image] + after


def gpu_env_file(unit: str) -> str:
    return f"{GPU_ENV_DIR}/{unit}.env"


def connect_argv(docker: str, project: str, name: str) -> list[str]:
    return [docker, "network", "connect", network_name(project), name]


def start_attached_argv(docker: str, name: str) -> list[str]:
    return [docker, "start", "--attach", name]


def stop_argv(docker: str, name: str, timeout: float) -> list[str]:
    # `-t`: `--time` is deprecated and hidden, and Docker warns about it on every stop.
    return [docker, "stop", "-t", str(int(timeout)), name]


def remove_argv(docker: str, name: str) -> list[str]:
    return [docker, "rm", "-f", name]
