"""Everything a plan needs to know about a host, read in one round trip.

`facts_script` builds the shell script (pure); `parse_facts` reads its output (pure), so
the parser is tested on captured output. The same script can take the deploy lock, which
saves a round trip: a no-op deploy costs this one and the final unlock, nothing else.
Secret files are hashed on the host; their content never travels back.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hostctl import layout as L
from hostctl.hosts import docker_api as A
from hostctl.hosts.lock import LockState, parse_lock, take_lock_lines
from hostctl.hosts.unit_show import UnitState
from hostctl.layout import MARK

VERSION = "2"


@dataclass(frozen=True)
class ContainerState:
    name: str
    state: str
    spec_hash: str


@dataclass(frozen=True)
class HostFacts:
    host: str
    docker_ok: bool = False
    docker_detail: str = ""
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256 (managed files)
    contents: dict[str, bytes] = field(default_factory=dict)  # non-secret files only
    units: dict[str, UnitState] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # normalised ref -> image id
    containers: dict[str, ContainerState] = field(default_factory=dict)
    networks: frozenset[str] = frozenset()
    current_release: str | None = None
    # The current release's status file: "unverified" while no health gate has seen it
    # healthy (hosts.scripts.mark_unverified), "" for most
    current_status: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    releases: tuple[str, ...] = ()
    lock: LockState = field(default_factory=LockState)
    now: int = 0  # the host's clock, epoch seconds
    # Docker's runtimes (`docker info`); None when Docker did not say (down, or too old)
    runtimes: frozenset[str] | None = None
    # service -> its handoff record, for the services handed to the cluster (L.CLUSTER_DIR)
    handed_off: dict[str, dict[str, Any]] = field(default_factory=dict)


def facts_script(docker: str, lock_record: str | None = None, runtimes: bool = True,
                 expected: Mapping[str, str] | None = None) -> str:
    """The script that prints a host's facts; with `lock_record`, it also takes the lock.
    `runtimes`: ask Docker for its runtimes too (only GPU hosts need them: one question
    less elsewhere, on the path every no-op deploy takes). `expected`: path -> sha256 of
    the public files the deploy would write; only those that differ on the host send
    their content (for the plan's diffs): a no-op deploy sends none. None: every public
    file's content."""
    d = shlex.quote(docker)
    globs = " ".join(L.MANAGED_GLOBS)
    public_globs = " ".join(g for g in L.MANAGED_GLOBS if not L.is_secret_path(g))
    lines = [
        "export LC_ALL=C",
        f"echo '{MARK}hostctl-facts {VERSION}'",
        f"echo \"{MARK}now $(date +%s)\"",
    ]
    if lock_record is not None:
        lines += take_lock_lines(lock_record)
    # Docker's questions go in at once, in the background, while the shell reads files and
    # systemd (hosts.docker_api: one docker process for all of them).
    paths = [A.CONTAINERS, A.IMAGES, A.NETWORKS, *([A.INFO] if runtimes else [])]
    lines += [
        'T=$(mktemp -d)',
        *A.api_lines(docker, paths),
        f"echo '{MARK}files'",
        *hash_lines(globs, into='"$T/sums"'),
        f"echo '{MARK}contents'",
        *(content_lines(public_globs) if expected is None else changed_content_lines(expected)),
        *unit_state_lines(L.UNIT_DIR),
        "wait",
        *A.answer_lines(docker_cli_lines(d, runtimes)),
        'rm -rf "$T"',
        f"echo '{MARK}cluster'",
        f"for f in {L.CLUSTER_DIR}/*; do [ -f \"$f\" ] && "
        "printf '%s %s\\n' \"${f##*/}\" \"$(head -c 4096 \"$f\" | tr -d '\\n')\"; done",
        f"echo '{MARK}current'",
        f"readlink {L.CURRENT_LINK} 2>/dev/null",
        f"echo '{MARK}status'",
        f"head -c 64 {L.CURRENT_LINK}/status 2>/dev/null; echo",
        f"echo '{MARK}manifest'",
        f"tr -d '\\n' < {L.CURRENT_LINK}/{L.MANIFEST} 2>/dev/null; echo",
        f"echo '{MARK}releases'",
        *release_names_lines(L.RELEASES_DIR),
        f"echo '{MARK}end'",
    ]
    return "\n".join(lines) + "\n"


def unit_names_lines(unit_dir: str) -> list[str]:
    """$units: hostctl's unit files in `unit_dir` but templates (`x@.service`), by name,
    from the shell's own glob: no process on the path of every deploy."""
    return ["units=",
            f"for f in {unit_dir}/hostctl-*.service {unit_dir}/hostctl-*.timer; do "
            'case "$f" in *@.service) ;; *) [ -e "$f" ] && units="$units ${f##*/}";; esac; done']


def unit_state_lines(unit_dir: str) -> list[str]:
    """What a deploy plans by for each of hostctl's units: its unit file (`@@unitfiles`),
    its load, active and sub state (`@@units`, one `systemctl list-units` line each) and
    whether it is enabled (`@@enabled`: the names `systemctl enable` linked into a
    target's .wants or .requires folder in `unit_dir`).

    Why not `systemctl show --property=...,UnitFileState`: it asks systemd one unit at a
    time (two D-Bus calls each), and working out UnitFileState makes systemd search every
    unit folder; for 20 units ~25 ms of the host's CPU, half of a no-op deploy's work there.
    list-units is one call. A unit file systemd has not loaded is not listed: it is
    loaded, inactive and dead, as `systemctl show` would load and describe it
    (`parse_unit_states`)."""
    return [
        *unit_names_lines(unit_dir),
        f"echo '{MARK}unitfiles'",
        '[ -n "$units" ] && printf \'%s\\n\' $units',
        f"echo '{MARK}units'",
        '[ -n "$units" ] && systemctl list-units --all --plain --no-legend --full -- $units',
        f"echo '{MARK}enabled'",
        f"for f in {unit_dir}/*.wants/hostctl-* {unit_dir}/*.requires/hostctl-*; do "
        '[ -L "$f" ] && echo "${f##*/}"; done',
    ]


def parse_unit_states(files: Sequence[str], listed: Sequence[str],
                      enabled: Sequence[str]) -> dict[str, UnitState]:
    """The `unit_state_lines` sections: each unit file's state, by unit name."""
    states: dict[str, tuple[str, str, str]] = {}
    for line in listed:
        words = line.split()
        # systemd before 245 marks a failed unit with a leading "●" even with --plain
        if words and not words[0].startswith("hostctl-"):
            words = words[1:]
        if len(words) >= 4:
            states[words[0]] = (words[1], words[2], words[3])
    on = {e.strip() for e in enabled}
    units = {}
    for name in (f.strip() for f in files):
        if name:
            load, active, sub = states.get(name, ("loaded", "inactive", "dead"))
            units[name] = UnitState(name, load=load, active=active, sub=sub,
                                    file_state="enabled" if name in on else "disabled")
    return units


def release_names_lines(releases_dir: str) -> list[str]:
    """The releases in `releases_dir` a line each, but one still being staged (`.partial`),
    from the shell's own glob."""
    return [f"for r in {releases_dir}/*; do "
            'case "$r" in *.partial) ;; *) [ -e "$r" ] && echo "${r##*/}";; esac; done']


def docker_cli_lines(d: str, runtimes: bool) -> list[str]:
    """The docker commands that answer what `docker_api` asks, for a host where
    `docker system dial-stdio` fails; `docker ps` failing means Docker is down."""
    return [
        f"( {d} ps -a --no-trunc --filter label=io.hostctl.managed=true "
        "--format '{{.Names}}\t{{.State}}\t{{.Label \"io.hostctl.spec-hash\"}}' "
        '>"$T/ps" 2>"$T/ps.err"; echo $? >"$T/ps.rc" ) &',
        f"( {d} image ls --no-trunc --digests "
        "--format '{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}' >\"$T/img\" 2>/dev/null ) &",
        f"( {d} network ls --filter label=io.hostctl.managed=true --format '{{{{.Name}}}}' "
        '>"$T/net" 2>/dev/null ) &',
        *([f"( {d} info --format '{{{{json .Runtimes}}}}' >\"$T/rt\" 2>/dev/null ) &"]
          if runtimes else []),
        "wait",
        f"echo '{MARK}docker'",
        'if [ "$(cat "$T/ps.rc")" = 0 ]; then echo ok; '
        'else echo "down $(tail -n 1 "$T/ps.err")"; fi',
        f"echo '{MARK}images'",
        'cat "$T/img"',
        f"echo '{MARK}containers'",
        'cat "$T/ps"',
        f"echo '{MARK}networks'",
        'cat "$T/net"',
        f"echo '{MARK}runtimes'",
        'cat "$T/rt" 2>/dev/null',
    ]


def hash_lines(globs: str, into: str | None = None) -> list[str]:
    """`sha256sum`'s line for every regular file the globs name, from one sha256sum for all
    of them (a host with many services has dozens: a process each was most of the script's
    time). `into`: a file (shell word) that keeps the lines too, for
    `changed_content_lines`."""
    if into is None:
        return ["set --",
                f"for f in {globs}; do [ -f \"$f\" ] && set -- \"$@\" \"$f\"; done",
                '[ $# -gt 0 ] && sha256sum -- "$@"']
    return ["set --",
            f"for f in {globs}; do [ -f \"$f\" ] && set -- \"$@\" \"$f\"; done",
            f": >{into}",
            f'[ $# -gt 0 ] && sha256sum -- "$@" >{into}',
            f"cat {into}"]


def content_lines(globs: str) -> list[str]:
    """`PATH BASE64` for every regular file the globs name (one base64 process a file, no
    command substitution's subshell around it)."""
    return [f"for f in {globs}; do [ -f \"$f\" ] && "
            "{ printf '%s ' \"$f\"; base64 -w0 \"$f\"; echo; }; done"]


def changed_content_lines(expected: Mapping[str, str], sums: str = '"$T/sums"') -> list[str]:
    """`PATH BASE64` for each file of `expected` (path -> sha256) that is on the host with
    other content: its `sha256sum` line (kept in `sums` by `hash_lines`) is not the one
    expected. The expected lines go in a quoted here-document: hostctl's own paths
    (checked names), so nothing in them is expanded."""
    want = "".join(f"{digest}  {path}\n" for path, digest in sorted(expected.items()))
    return [f"grep -vxF -f {sums} <<'HOSTCTL_WANT' | while read -r _ f; do "
            "[ -f \"$f\" ] && { printf '%s ' \"$f\"; base64 -w0 \"$f\"; echo; }; done",
            want + "HOSTCTL_WANT"]


class FactsError(ValueError):
    """The host's answer was not what the facts script prints (truncated, wrong shell...)."""


def parse_facts(host: str, text: str) -> HostFacts:
    sections = split_sections(text)
    if "end" not in sections:
        raise FactsError(f"{host}: incomplete answer from the host (no end marker)")
    docker = (sections.get("docker") or [""])[0]
    lock = parse_lock(sections)
    if A.SECTION in sections:
        engine = _engine_state(host, sections[A.SECTION])
    else:  # the docker commands answered (dial-stdio failed on the host)
        engine = EngineState(
            docker_ok=docker.split(" ")[0] == "ok", docker_detail=docker.partition(" ")[2].strip(),
            images=_images(sections.get("images", [])),
            containers=_containers(sections.get("containers", [])),
            networks=frozenset(n for n in sections.get("networks", []) if n),
            runtimes=_runtimes(sections.get("runtimes", [])))
    return HostFacts(
        host=host,
        docker_ok=engine.docker_ok,
        docker_detail=engine.docker_detail,
        files=_files(sections.get("files", [])),
        contents=_contents(sections.get("contents", [])),
        units=parse_unit_states(sections.get("unitfiles", []), sections.get("units", []),
                                sections.get("enabled", [])),
        images=engine.images,
        containers=engine.containers,
        networks=engine.networks,
        current_release=_current(sections.get("current", [])),
        current_status="".join(sections.get("status", [])).strip(),
        manifest=_manifest(sections.get("manifest", [])),
        releases=tuple(sorted(r for r in sections.get("releases", []) if r)),
        lock=lock,
        now=int((sections.get("now") or ["0"])[0] or 0),
        runtimes=engine.runtimes,
        handed_off=parse_handed_off(sections.get("cluster", [])),
    )


@dataclass(frozen=True)
class EngineState:
    """What the facts say of Docker, from its API's answers or from the docker commands."""

    docker_ok: bool
    docker_detail: str
    images: dict[str, str]
    containers: dict[str, ContainerState]
    networks: frozenset[str]
    runtimes: frozenset[str] | None


def _engine_state(host: str, lines: list[str]) -> EngineState:
    """The `@@api` section: the answers to containers, images, networks and (GPU hosts)
    info, in that order."""
    try:
        found, images, nets, *info = A.section_answers(host, lines, 3)
    except A.DockerApiError as exc:
        raise FactsError(str(exc)) from None
    containers = {}
    for c in A.containers(found):
        name = A.container_name(c)
        if name:
            spec_hash = A.labels(c).get("io.hostctl.spec-hash", "")
            containers[name] = ContainerState(name, str(c.get("State", "")), spec_hash)
    return EngineState(True, "", A.images(images), containers, A.networks(nets),
                       A.runtimes(info[0]) if info else None)


def split_sections(text: str) -> dict[str, list[str]]:
    """`@@name rest` starts a section (rest is its first line); other lines belong to it."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(MARK):
            name, _, rest = line[len(MARK):].partition(" ")
            current = sections.setdefault(name, [])
            if rest:
                current.append(rest)
            continue
        if current is not None:
            current.append(line)
    return sections


def _files(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        digest, _, path = line.partition("  ")
        if path and len(digest) == 64:
            out[path] = digest
    return out


def _contents(lines: list[str]) -> dict[str, bytes]:
    out = {}
    for line in lines:
        path, _, data = line.partition(" ")
        if path:
            out[path] = base64.b64decode(data) if data else b""
    return out


def normalise_ref(ref: str) -> str:
    """Docker's short form of an image reference: `docker.io/library/x` is shown as `x`,
    and a reference without tag or digest means `:latest`."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    name = ref.split("@")[0]
    if "@" not in ref and ":" not in name.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


def _images(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) != 4:
            continue
        repo, tag, digest, image_id = parts
        if repo == "<none>":
            continue
        if tag != "<none>":
            out[f"{repo}:{tag}"] = image_id
        if digest != "<none>":
            out[f"{repo}@{digest}"] = image_id
    return out


def _containers(lines: list[str]) -> dict[str, ContainerState]:
    out = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) == 3:
            out[parts[0]] = ContainerState(parts[0], parts[1], parts[2])
    return out


def _current(lines: list[str]) -> str | None:
    target = lines[0].strip() if lines else ""
    return target.rsplit("/", 1)[-1] or None


def _manifest(lines: list[str]) -> dict[str, Any]:
    raw = "".join(lines).strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _runtimes(lines: list[str]) -> frozenset[str] | None:
    """`docker info --format '{{json .Runtimes}}'`: {"runc": {...}, "nvidia": {...}}."""
    try:
        data = json.loads("".join(lines).strip() or "null")
    except ValueError:
        return None
    return frozenset(data) if isinstance(data, dict) else None


def parse_handed_off(lines: list[str]) -> dict[str, dict[str, Any]]:
    """`SERVICE JSON` lines (the `@@cluster` section) -> service -> its handoff record."""
    out: dict[str, dict[str, Any]] = {}
    for line in lines:
        name, _, raw = line.partition(" ")
        if not name:
            continue
        try:
            record = json.loads(raw) if raw else {}
        except ValueError:
            record = {}
        # An unreadable record still means "handed off": deploy must not start it again.
        out[name] = record if isinstance(record, dict) else {}
    return out
