"""parse -> validate: read an inventory, its specs and secrets into a `Site`, or fail whole.

Every problem of the run is collected and raised together as one ConfigError, so an
operator fixes a whole batch at once instead of one error per run.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from hostctl.errors import ConfigError, Problem, Source
from hostctl.spec import checks
from hostctl.spec import model as m
from hostctl.spec import rules as s
from hostctl.spec.input_files import InputFileError, not_regular, read_input, utf8_problem
from hostctl.spec.inventory import INVENTORY_KEYS
from hostctl.spec.schema import INVALID, Context, Record
from hostctl.spec.secrets import SecretStore, load_secrets
from hostctl.spec.sections.jobs import JobsConfig
from hostctl.spec.sections.k3s import K3sConfig
from hostctl.spec.sections.projects import ProjectsConfig
from hostctl.spec.yamlsource import Document, Path, YamlProblem, format_path, load_documents
from hostctl.systemd.quoting import UnitQuotingError, setting_value


def display_path(path: str) -> str:
    """Paths in messages: relative to where the operator stands, when that is shorter."""
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else os.path.abspath(path)


def read_text(path: str, problems: list[Problem], what: str) -> str | None:
    """The text of an inventory or spec file, or None with the reason in `problems`."""
    shown = display_path(path)
    try:
        data = read_input(path)
    except InputFileError as exc:
        problems.append(Problem(shown, 0, "", _unreadable(what, str(exc))))
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = utf8_problem(data, exc)
        problems.append(Problem(shown, line, "", f"{what} is not UTF-8 text: byte "
                                f"0x{data[exc.start]:02x} at column {column}; save it as UTF-8"))
        return None


def _unreadable(what: str, reason: str) -> str:
    if reason.startswith("cannot be read: "):
        return f"cannot read {what}: {reason.removeprefix('cannot be read: ')}"
    if reason.startswith("is a directory"):
        return f"{what} is a directory, expected a YAML file"
    return f"{what} {reason}"


def parse_yaml(path: str, problems: list[Problem], what: str) -> list[Document] | None:
    text = read_text(path, problems, what)
    if text is None:
        return None
    try:
        return load_documents(text, display_path(path))
    except YamlProblem as exc:
        problems.append(exc.problem)
        return None


def load_inventory(path: str, problems: list[Problem]) -> m.Inventory | None:
    docs = parse_yaml(path, problems, "inventory")
    if docs is None:
        return None
    shown = display_path(path)
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        problems.append(Problem(shown, docs[0].start_line if docs else 0, "",
                                "an inventory is one YAML mapping (site, hosts, specs, ...)"))
        return None
    doc = docs[0]
    ctx = Context(doc, problems)
    top: dict[str, Any] = Record(dict, INVENTORY_KEYS)(doc.data, (), ctx)
    if top is INVALID:
        return None
    if _nul_in_file_names(doc.data, ctx):
        return None
    base = os.path.dirname(os.path.abspath(path))
    defaults = m.SSHSettings(**_ssh_paths(base, top.get("ssh", {})))
    hosts: dict[str, m.Host] = {}
    for host_name, raw in top["hosts"].items():
        host = s.host_record(host_name)(raw, ("hosts", host_name), ctx)
        if host is INVALID:
            continue
        overrides = _ssh_paths(base, host.ssh) if isinstance(host.ssh, dict) else {}
        hosts[host_name] = replace(host, ssh=replace(defaults, **overrides),
                                   line=doc.line_of(("hosts", host_name)))
    if len(hosts) != len(top["hosts"]):
        return None
    if not hosts:
        ctx.error(("hosts",), "no hosts: add at least one host with its address")
        return None
    secrets = top.get("secrets", m.SecretsConfig())
    if secrets.env_file:
        secrets = replace(secrets, env_file=_resolve(base, secrets.env_file))
    lines = {str(k): doc.line_of((k,)) for k in doc.data}
    return m.Inventory(
        file=shown,
        site=top["site"],
        hosts=hosts,
        ssh=defaults,
        profiles=top.get("profiles", {}),
        specs=tuple(_resolve(base, p) for p in top["specs"]),
        secrets=secrets,
        image_source=top.get("image_source", "pull"),
        gateway=top.get("gateway"),
        logging=top.get("logging"),
        metrics=top.get("metrics"),
        k3s=top.get("k3s") or K3sConfig(file=shown, lines={"k3s": lines.get("k3s", 0)}),
        jobs=top.get("jobs") or JobsConfig(file=shown, lines={"jobs": lines.get("jobs", 0)}),
        projects=top.get("projects") or ProjectsConfig(
            file=shown, lines={"projects": lines.get("projects", 0)}),
        lines=lines,
    )


def _nul_in_file_names(data: dict[str, Any], ctx: Context) -> bool:
    """Report SSH key and known_hosts paths with a NUL, which no file name can hold (the
    secrets file's is reported where it is read); True if there was one."""
    found = False
    hosts = data.get("hosts")
    sections: list[tuple[Path, Any]] = [(("ssh",), data.get("ssh"))]
    if isinstance(hosts, dict):
        sections += [(("hosts", name, "ssh"), raw.get("ssh")) for name, raw in hosts.items()
                     if isinstance(raw, dict)]
    for where, ssh in sections:
        for key in ("key", "known_hosts"):
            value = ssh.get(key) if isinstance(ssh, dict) else None
            if isinstance(value, str) and "\0" in value:
                ctx.error((*where, key), "has a NUL character, which no file name can hold; "
                                         "remove it")
                found = True
    return found


def _ssh_paths(base: str, ssh: dict[str, Any]) -> dict[str, Any]:
    """Key and known_hosts paths are relative to the inventory, like every other path."""
    return {k: _resolve(base, v) if k in ("key", "known_hosts") else v for k, v in ssh.items()}


def _resolve(base: str, path: str) -> str:
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


def spec_files(inv: m.Inventory, problems: list[Problem], base: str = ".") -> list[str]:
    """The spec files the inventory names, each once, in a stable order. `base`: the
    inventory's folder, which rendered units name spec files relative to."""
    files: list[str] = []
    for i, pattern in enumerate(inv.specs):
        where = (inv.file, inv.lines.get("specs", 0), f"specs/{i}")
        if glob.has_magic(pattern):
            # What a pattern matches besides regular files (folders, pipes) is not a spec.
            matches = [p for p in sorted(glob.glob(pattern, recursive=True))
                       if os.path.isfile(p)]
        else:
            kind = _not_a_file(pattern)
            if kind:
                problems.append(Problem(*where, f"'{display_path(pattern)}' is {kind}"))
                continue
            matches = [pattern] if os.path.exists(pattern) else []
        if not matches:
            problems.append(Problem(*where, f"'{display_path(pattern)}' matches no file; fix "
                                            "the path (it is relative to the inventory)"))
        for path in matches:
            why = _name_problem(os.path.relpath(os.path.abspath(path), base))
            if why:
                problems.append(Problem(*where, f"'{display_path(path)}': {why}"))
            elif path not in files:
                files.append(path)
    return files


def _name_problem(source: str) -> str | None:
    """Why a spec file's name cannot be written into the units made from it (each names its
    spec file), or None."""
    try:
        setting_value(source)
    except UnitQuotingError as exc:
        return f"a systemd unit cannot name this file ({exc}); rename it"
    return None


def _not_a_file(path: str) -> str | None:
    """What `path` is when it exists and is no regular file, worded for a message."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISDIR(mode):
        return ("a directory; name the spec files in it, such as "
                f"'{display_path(os.path.join(path, '*.yml'))}'")
    kind = not_regular(mode)
    return f"{kind}, not a regular file; name a YAML file" if kind else None


def load_workloads(files: list[str], problems: list[Problem], base: str = ".") -> list[m.Workload]:
    workloads: list[m.Workload] = []
    for path in files:
        docs = parse_yaml(path, problems, "spec file")
        if docs is None:
            continue
        docs = [d for d in docs if d.data is not None]
        if not docs:
            problems.append(Problem(display_path(path), 1, "",
                                    "no workload in this file; add a spec or remove the file"))
        source = os.path.relpath(os.path.abspath(path), base)
        for doc in docs:
            workload = parse_workload(doc, problems, source)
            if workload is not None:
                workloads.append(workload)
    return workloads


def parse_workload(doc: Document, problems: list[Problem],
                   source: str = "") -> m.Workload | None:
    ctx = Context(doc, problems)
    if not isinstance(doc.data, dict):
        ctx.error((), "a workload spec is a YAML mapping with kind, name, project and image")
        return None
    before = len(problems)
    kind = doc.data.get("kind")
    _check_kind_keys(kind, doc.data, ctx)
    w = s.workload(doc.data, (), ctx)
    if w is INVALID or len(problems) > before:
        return None
    lines = {format_path(p): line for p, line in doc.lines.items()}
    return replace(w, file=doc.file, source=source, line=doc.start_line, lines=lines)


def _check_kind_keys(kind: Any, data: dict[str, Any], ctx: Context) -> None:
    if kind == "job":
        for key in s.SERVICE_ONLY:
            if key in data:
                ctx.error((key,), f"jobs have no {key}; remove it, or make this kind: service")
    elif kind == "service":
        for key in s.JOB_ONLY:
            if key in data:
                ctx.error((key,), f"services have no {key}; remove it, or make this kind: job")


def resolve_workload(w: m.Workload, inv: m.Inventory) -> m.Workload:
    """Fill in what the inventory decides: profile values and the image source."""
    res = w.resources
    if res.profile is not None:
        p = inv.profiles[res.profile]
        res = m.Resources(cpus=p.cpus, memory=p.memory, gpus=p.gpus, gpu_models=p.gpu_models,
                          profile=res.profile)
    return replace(w, resources=res, image_source=w.image_source or inv.image_source)


# A check that renders what the parsed site makes (hostctl.validate's): it is told whether
# anything was found before it, and renders nothing of a site with problems.
FinalCheck = Callable[[m.Inventory, list[m.Workload], SecretStore, bool], Iterable[Problem]]


def load_site(inventory_path: str, environ: Mapping[str, str] | None, *,
              final_checks: Sequence[FinalCheck]) -> m.Site:
    """Parse and check everything, then run `final_checks` (hostctl.validate.load_site
    passes validate's); raise ConfigError with every problem found."""
    problems: list[Problem] = []
    inv = load_inventory(inventory_path, problems)
    if inv is None:
        raise ConfigError(problems)
    base = os.path.dirname(os.path.abspath(inventory_path))
    workloads = load_workloads(spec_files(inv, problems, base), problems, base)
    store, secret_problems = load_secrets(
        inv.secrets.env_file, inv.secrets.env_prefix, environ,
        display_path(inv.secrets.env_file) if inv.secrets.env_file else None,
        Source(inv.file, inv.lines.get("secrets", 0), "secrets/env_file"))
    problems.extend(secret_problems)
    problems.extend(checks.run_all(inv, workloads, store))
    for final in final_checks:
        problems.extend(final(inv, workloads, store, bool(problems)))
    if problems:
        raise ConfigError(problems)
    resolved = tuple(resolve_workload(w, inv) for w in workloads)
    return m.Site(inventory=inv, workloads=resolved, secrets=store)
