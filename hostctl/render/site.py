"""Render every file a host needs, as bytes with a mode: pure functions, strings out.

Same input, byte-identical output: everything is sorted, nothing depends on time or on
the machine rendering it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import jinja2

from hostctl import layout as L
from hostctl.gateway.declarative import render_declarative
from hostctl.jobs.host_files import gpu_conf_text, gpu_config, helper_text
from hostctl.observability.files import host_files
from hostctl.observability.logging_args import log_args
from hostctl.render import docker_cmd as d
from hostctl.render.files import MODE_PUBLIC, MODE_SECRET, RenderedFile
from hostctl.render.probe import probe_files
from hostctl.spec import model as m
from hostctl.spec.placement import (
    Instance,
    eligible_hosts,
    instances_on,
    placed_on,
    schedule_host,
)
from hostctl.spec.platform import PLATFORM_PROJECT
from hostctl.spec.sections.gateway import DECLARATIVE_PATH
from hostctl.systemd.quoting import UnitQuotingError, exec_line, setting_value


def _templates_dir() -> Path:
    # Installed wheels carry the templates inside the package; a checkout has them at the top.
    packaged = Path(__file__).parents[1] / "_data" / "units"
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / "units"


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_templates_dir())),
        autoescape=False,  # systemd syntax, not HTML: values are escaped for systemd instead
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,  # the templates ship with hostctl: no stat() per unit rendered
    )


def _render(template: str, **values: object) -> bytes:
    return _env().get_template(template).render(**values).encode()


def service_unit(inst: Instance, site: str, log: Sequence[str] = d.UNIT_JOURNAL) -> RenderedFile:
    w, docker = inst.workload, inst.host.docker
    if w.reach:
        # `docker run` joins one network only (Docker 20.10): create the container, connect
        # it to the other projects' networks, then start it attached, all before it runs.
        pre = [_exec_words(d.service_run_argv(inst, site, verb="create", log=log))]
        pre += [exec_line(d.connect_argv(docker, p, inst.name)) for p in w.reach]
        run = exec_line(d.start_attached_argv(docker, inst.name))
    else:
        pre, run = [], _exec_words(d.service_run_argv(inst, site, log=log))
    gpus = w.resources.gpus
    text = _render(
        "service.unit.j2",
        site=site,
        spec_file=setting_value(w.source),
        spec_hash=d.spec_hash(w),
        description=setting_value(
            f"hostctl service {w.name} #{inst.index} (project {w.project})"),
        name=inst.name,
        pre=pre,
        run=run,
        stop=exec_line(d.stop_argv(docker, inst.name, w.stop_timeout)),
        remove=exec_line(d.remove_argv(docker, inst.name)),
        restart={"always": "always", "on-failure": "on-failure", "never": "no"}[w.restart],
        stop_timeout=int(w.stop_timeout) + 15,
        gpus=gpus,
        gpu_env=d.gpu_env_file(inst.unit),
        # The models it accepts, comma-separated, only when it names some (a plain count's
        # line stays as it was).
        gpu_lease=exec_line([L.JOBS_HELPER, "lease-service", inst.unit, str(gpus),
                             *([",".join(w.resources.gpu_models)]
                               if w.resources.gpu_models else [])]),
        gpu_release=exec_line([L.JOBS_HELPER, "release-service", inst.unit]),
    )
    return RenderedFile(f"{L.UNIT_DIR}/{inst.unit}", text, workload=w.name)


def job_unit_name(w: m.Workload) -> str:
    return f"hostctl-job-{w.name}@.service"


Raw = d.Raw


def _exec_words(argv: Sequence[str]) -> str:
    if not any(isinstance(word, Raw) for word in argv):
        return exec_line(argv)  # nothing written as is: one pass over the whole line
    stub = "/x"
    words = []
    for i, word in enumerate(argv):
        if isinstance(word, Raw):
            words.append(str(word))
        elif i == 0:
            words.append(exec_line([word]))
        else:  # escape one word on its own, so no user text can reach a Raw word
            words.append(exec_line([stub, word])[len(stub) + 1:])
    return " ".join(words)


JOBS_HELPER = L.JOBS_HELPER
# ExecCondition of a run: the queue admits it (exit 0) or keeps it waiting (1). Deploy
# installs the queue with the unit (jobs_files); should the helper still be missing (a
# rollback to a release from before it was managed), a job without GPUs runs at once as it
# always did, and a job with GPUs fails, as it must never run without its lease.
_ADMIT = ('h=' + JOBS_HELPER + '; [ -x "$h" ] && exec "$h" admit "$0" "$1"; '
          'echo "hostctl: $h is missing (a deploy, or any hostctl run or jobs command, '
          'installs it)" >&2; exit "$2"')


def _job_run_words(w: m.Workload, host: m.Host, site: str,
                   log: Sequence[str]) -> list[str | Raw]:
    """The `docker run` of a job's unit; Raw words carry systemd's %i and the queue's
    per-run variables."""
    container = Raw(f"hostctl-job-{w.name}-%i")
    run: list[str | Raw] = [host.docker, "run", "--rm", "--name", container,
                            "--label", Raw(f"{d.LABEL}.run=%i")]
    run += d.labels(w, site, {f"{d.LABEL}.host": host.name})
    # GPUs come from the queue's lease (specific devices, in $HOSTCTL_RUN_ARGS), not a count.
    run += d.common_run_args(replace(w, resources=replace(w.resources, gpus=0)),
                             bool(w.secrets or w.env), log, env_flags=False)
    run += [*artifacts_mount(w), Raw("$HOSTCTL_RUN_ARGS")]
    before, after = d.command_tail(w)
    # The image the queue chose for this run (the id the reference resolved to when it
    # started, or a rerun's pinned id): one word, ${...} (never split). The unit's own
    # default, the spec's reference, applies should unit.env be missing.
    run += [*before, Raw("${HOSTCTL_RUN_IMAGE}"), *after]
    return run


def job_run_argv(w: m.Workload, host: m.Host, site: str, log: Sequence[str],
                 run_id: str) -> list[str]:
    """The argv run `run_id`'s unit runs, as its record keeps it: %i is the run id; the
    queue's $HOSTCTL_RUN_ARGS and ${HOSTCTL_RUN_IMAGE} stay words of their own (`hostctl
    runs show` fills them in from the run's unit.env)."""
    return [str(word).replace("%i", run_id) if isinstance(word, Raw) else word
            for word in _job_run_words(w, host, site, log)]


def project_priority(inv: m.Inventory, project: str) -> str:
    """The default priority of a project's runs (`projects:`; normal when not listed)."""
    quota = inv.projects.projects.get(project)
    return quota.priority if quota is not None else "normal"


def job_unit(w: m.Workload, host: m.Host, site: str,
             log: Sequence[str] = d.UNIT_JOURNAL, priority: str = "normal") -> RenderedFile:
    """`priority`: its project's default (projects:), what a run its timer starts gets."""
    run = _job_run_words(w, host, site, log)
    container = Raw(f"hostctl-job-{w.name}-%i")
    r = w.resources
    queue_env = {
        "HOSTCTL_JOB_PROJECT": w.project, "HOSTCTL_JOB_HOST": host.name,
        "HOSTCTL_JOB_GPUS": str(r.gpus),
        "HOSTCTL_JOB_CPUS": str(round(r.cpus * 1000) if r.cpus else 0),
        "HOSTCTL_JOB_MEMORY": str(r.memory or 0),
        "HOSTCTL_JOB_ATTEMPTS": str(w.retries + 1), "HOSTCTL_JOB_SHARDS": str(w.shards),
    }
    if r.gpus and r.gpu_models:  # a run started by its timer takes devices of these models
        queue_env["HOSTCTL_JOB_GPU_MODELS"] = ",".join(r.gpu_models)
    if priority != "normal":  # the queue's default
        queue_env["HOSTCTL_JOB_PRIORITY"] = priority
    text = _render(
        "job.unit.j2",
        site=site,
        spec_file=setting_value(w.source),
        spec_hash=d.spec_hash(w),
        job=w.name,
        description=setting_value(f"hostctl job {w.name} (project {w.project})") + ", run %i",
        helper=JOBS_HELPER,
        queue_env=" ".join(f"{k}={v}" for k, v in queue_env.items()),
        image=_image_setting(w.image),
        admit=_exec_words(["/bin/sh", "-c", _ADMIT, w.name, Raw("%i"),
                           "255" if r.gpus else "0"]),
        run=_exec_words(run),
        stop=_exec_words(d.stop_argv(host.docker, container, w.stop_timeout)),
        remove=_exec_words([host.docker, "rm", "-f", container]),
        finished=_exec_words([JOBS_HELPER, "finished", w.name, Raw("%i")]),
        stop_timeout=int(w.stop_timeout) + 15,
        runtime_max=int(w.timeout) if w.timeout else None,
    )
    return RenderedFile(f"{L.UNIT_DIR}/{job_unit_name(w)}", text, workload=w.name)


def _image_setting(image: str) -> str:
    """`HOSTCTL_RUN_IMAGE=REF` for an Environment= line. A reference Docker takes (the spec
    rules) has none of the characters Environment= would read as quoting, escapes or a
    specifier; refused here should one ever reach render otherwise."""
    if not re.fullmatch(r"[A-Za-z0-9._:/@-]+", image):
        raise UnitQuotingError(f"image reference {image!r} cannot be written into the unit")
    return f"HOSTCTL_RUN_IMAGE={image}"


ARTIFACTS_DIR = "/artifacts"


def artifacts_volume(project: str) -> str:
    return f"hostctl-{project}-artifacts"


def artifacts_mount(w: m.Workload) -> list[str]:
    """The project's artifacts volume at /artifacts in every run, so a run finds what earlier
    runs (on that host) left there. Docker creates it on first use, labelled as hostctl's."""
    opts = ["type=volume", f"src={artifacts_volume(w.project)}", f"dst={ARTIFACTS_DIR}",
            f"volume-label={d.LABEL}.managed=true", f"volume-label={d.LABEL}.project={w.project}"]
    return ["--mount", ",".join(opts)]


def jobs_files(site: m.Site, host: m.Host) -> list[RenderedFile]:
    """The run queue's helper and the host's GPUs for it, where jobs or GPU services are: a
    timer's runs and a service's GPU lease need them before anyone runs `hostctl run`. The
    same bytes `hostctl run` writes (hostside.install_lines), so the two never fight."""
    needed = any(placed_on(w, host) and (w.is_job or (
        w.resources.gpus and instances_on(w, host))) for w in site.workloads)
    if not needed:
        return []
    return [RenderedFile(L.JOBS_HELPER, helper_text(), 0o755, workload=L.JOBS_WORKLOAD,
                         restarts=False),
            RenderedFile(L.GPU_CONF,
                         gpu_conf_text(gpu_config(host, site.inventory.jobs.keep_runs)),
                         MODE_PUBLIC,
                         workload=L.JOBS_WORKLOAD, restarts=False)]


def job_timer(w: m.Workload, site: str) -> RenderedFile:
    assert w.schedule is not None
    text = _render(
        "job.timer.j2",
        site=site,
        spec_file=setting_value(w.source),
        spec_hash=d.spec_hash(w),
        description=setting_value(f"schedule of hostctl job {w.name} (project {w.project})"),
        calendar=setting_value(w.schedule),
        unit=f"hostctl-job-{w.name}@scheduled.service",
    )
    return RenderedFile(f"{L.UNIT_DIR}/hostctl-job-{w.name}.timer", text, workload=w.name)


def env_file(w: m.Workload, site: m.Site) -> RenderedFile:
    """The secrets of one workload, in Docker's env-file format (one NAME=VALUE a line); a
    job's spec env too (d.job_env_in_file), before them."""
    real, shown = [], []
    plain = [f"{k}={v}\n" for k, v in sorted(w.env.items())] if d.job_env_in_file(w) else []
    for name in sorted(w.secrets):
        secret = site.secrets.get(name)
        assert secret is not None, "validation guarantees every secret exists"
        real.append(f"{name}={secret.reveal()}\n")
        shown.append(f"{name}=<secret {name}>\n")
    if plain:
        header = ("# Rendered by hostctl: the env" + (" and secrets" if real else "") + " of "
                  f"job {w.name}; a run's --set values (its own env file, read after this "
                  "one) override them. Mode 0600.\n")
    else:
        header = "# Rendered by hostctl: secrets of " + w.name + ". Mode 0600.\n"
    return RenderedFile(
        d.env_file_path(w), (header + "".join(plain + real)).encode(), MODE_SECRET,
        secret=bool(real), redacted_content=(header + "".join(plain + shown)).encode(),
        workload=w.name,
    )


def render_host(site: m.Site, host: m.Host) -> list[RenderedFile]:
    """Every hostctl file that belongs on `host`, sorted by path."""
    return _host_files(site, host, tuple(w for w in site.workloads if placed_on(w, host)),
                       functools.partial(gateway_file, site))


def render_site(site: m.Site) -> dict[str, list[RenderedFile]]:
    # Each workload's hosts, found once (not every workload asked about every host).
    placed: dict[str, list[m.Workload]] = {name: [] for name in site.inventory.hosts}
    for w in site.workloads:
        for host in eligible_hosts(w, site.inventory):
            placed[host.name].append(w)
    kong: list[RenderedFile | None] = []

    def gateway(host: m.Host) -> RenderedFile | None:
        """gateway_file, built once: every Kong host gets the same file."""
        if not kong:
            found = gateway_file(site, host)
            if found is not None:
                kong.append(found)
            return found
        return kong[0] if _runs_kong(site, host) else None

    return {name: _host_files(site, host, tuple(placed[name]), gateway)
            for name, host in site.inventory.hosts.items()}


def _host_files(site: m.Site, host: m.Host, placed: tuple[m.Workload, ...],
                gateway: Callable[[m.Host], RenderedFile | None]) -> list[RenderedFile]:
    """render_host, given the workloads placed on `host` (in the site's order) and what
    gives the host's Kong file."""
    inv = site.inventory
    files: dict[str, RenderedFile] = {}

    def add(f: RenderedFile) -> None:
        files[f.path] = f

    # The host's own files (jobs, observability, probe) look only at the workloads placed
    # on it: they go through those, not through every workload of the site again. The
    # Kong file is the site's: `site`.
    here = replace(site, workloads=placed)
    for w in placed:
        if w.is_job:
            add(job_unit(w, host, inv.site, log_args(inv.logging, inv, w),
                         project_priority(inv, w.project)))
            if w.schedule and schedule_host(w, inv) == host:
                add(job_timer(w, inv.site))
        else:
            for inst in instances_on(w, host):
                add(service_unit(inst, inv.site, log_args(inv.logging, inv, w)))
        if w.secrets or (w.env and d.job_env_in_file(w)):
            add(env_file(w, site))
    for f in jobs_files(here, host):
        add(f)
    for f in host_files(here, host):  # the exporter; the Logstash pipeline on its host
        add(f)

    for f in probe_files(here, host):
        add(f)
    kong = gateway(host)
    if kong is not None:
        add(kong)
    return [files[p] for p in sorted(files)]


def gateway_file(site: m.Site, host: m.Host) -> RenderedFile | None:
    """Kong's declarative config, on the hosts where hostctl runs Kong."""
    if not _runs_kong(site, host):
        return None
    # Kong routes to the site's own services; platform services are not among them.
    own = tuple(w for w in site.workloads if w.project != PLATFORM_PROJECT)
    rendered = render_declarative(replace(site, workloads=own))
    if rendered is None:
        return None
    # The official image runs Kong as user kong (uid 1000): it must be able to read it.
    return RenderedFile(DECLARATIVE_PATH, rendered.text, MODE_SECRET, secret=True,
                        redacted_content=rendered.redacted, workload=L.GATEWAY_WORKLOAD,
                        owner="1000:1000", restarts=False)


def _runs_kong(site: m.Site, host: m.Host) -> bool:
    kong = next((w for w in site.workloads if w.name == L.GATEWAY_WORKLOAD), None)
    return kong is not None and placed_on(kong, host)
