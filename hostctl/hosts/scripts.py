"""Shell scripts that change a host: stage a release, check health, finish a run. Pure
builders (the script that applies a plan is deploy.activate's).

Scripts are sent on stdin to `sh -s` (not as an argument, which is capped at 128 KiB), and
report progress as `@@` marker lines that `parse_markers` reads. Every file lands by
temp-file-then-rename in its own directory, so a cut connection never leaves a half-written
unit or env file; secret files are created under umask 077 and are never readable by others
at any moment.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Mapping, Sequence

from hostctl import layout as L
from hostctl.hosts.audit import append_audit_lines
from hostctl.hosts.lock import release_lock_lines

q = shlex.quote

PRELUDE = r"""umask 077
export LC_ALL=C
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
step() {
  n=$1; shift
  if ! "$@" >>"$LOG" 2>&1; then
    echo "@@failed $n"; tail -n 20 "$LOG"; exit 1
  fi
}
unit_step() {
  # systemctl's own "see systemctl status" says nothing of why: the failing units' last
  # lines (their processes' output, e.g. an ExecStartPre that could not lease its GPUs) do.
  n=$1; shift
  if ! systemctl "$n" -- "$@" >>"$LOG" 2>&1; then
    echo "@@failed $n"; tail -n 20 "$LOG"
    for u in "$@"; do
      systemctl is-active --quiet -- "$u" && continue
      echo "@@unit-log $u"
      # (a stop path's `docker rm -f` of a container that never started is noise here)
      journalctl --no-pager -o cat -n 20 _SYSTEMD_UNIT="$u" 2>/dev/null \
        | grep -v '^Error: No such container' | tail -n 3 | cut -c1-300
    done
    exit 1
  fi
}
put() {
  mkdir -p "$(dirname "$2")" && cp "$1" "$2.hostctl-new" && chmod "$3" "$2.hostctl-new" \
    && { [ -z "${4:-}" ] || chown "$4" "$2.hostctl-new"; } && mv -f "$2.hostctl-new" "$2"
}
""" + f"[ -d {L.LOCK_DIR} ] && echo $$ > {L.LOCK_DIR}/apply.pid\n"


def release_dir(release: str) -> str:
    return f"{L.RELEASES_DIR}/{release}"


def stage_release(release: str, contents: Mapping[str, tuple[bytes, int]],
                  removed: Sequence[str], manifest: Mapping[str, object]) -> str:
    """Build a new release directory: the live files, with the plan's writes and removals.

    The release is complete on its own (every managed file), so rolling back to it never
    depends on what else is on the host.
    """
    r = release_dir(release)
    globs = " ".join(L.MANAGED_GLOBS)
    lines = [
        f"R={q(r)}",
        'rm -rf "$R.partial" && mkdir -p "$R.partial/files"',
        f'for f in {globs}; do [ -f "$f" ] && mkdir -p "$R.partial/files$(dirname "$f")" '
        '&& cp -p "$f" "$R.partial/files$f"; done',
    ]
    for path, (data, mode) in sorted(contents.items()):
        staged = f'"$R.partial/files"{q(path)}'
        lines += [
            f'mkdir -p "$(dirname {staged})"',
            f"base64 -d > {staged} <<'HOSTCTL_EOF'",
            base64.encodebytes(data).decode().rstrip("\n"),
            "HOSTCTL_EOF",
            f"chmod {mode:04o} {staged}",
        ]
    for path in sorted(removed):
        lines.append(f'rm -f "$R.partial/files"{q(path)}')
    lines += [
        f"printf '%s\\n' {q(json.dumps(manifest, sort_keys=True))} > \"$R.partial/{L.MANIFEST}\"",
        'rm -rf "$R" && mv "$R.partial" "$R"',
        "echo '@@staged'",
    ]
    return "\n".join(lines) + "\n"


def words(items: Sequence[str]) -> str:
    """Each item shell-quoted, space-separated."""
    return " ".join(q(i) for i in items)


def finish_script(lock_record: str | None, audit_record: Mapping[str, object],
                  keep: int = L.KEEP_RELEASES, protect: Sequence[str] = (),
                  verified: str | None = None) -> str:
    """Append the audit record, prune old releases, and release our lock (only ours).
    `verified`: a release now seen healthy, whose "unverified" mark goes (mark_unverified)."""
    lines = append_audit_lines(audit_record)
    if verified is not None:
        status = q(release_dir(verified) + "/status")
        lines.append(f'[ "$(cat {status} 2>/dev/null)" = {UNVERIFIED} ] && rm -f {status}')
    keep_list = " ".join(q(p) for p in protect)
    lines += [
        f"cur=$(readlink {L.CURRENT_LINK} 2>/dev/null | sed 's|.*/||')",
        f"ls -1 {L.RELEASES_DIR} 2>/dev/null | grep -v '\\.partial$' | sort | head -n -{keep} | "
        "while read -r r; do",
        f'  case " $cur {keep_list} " in *" $r "*) continue;; esac',
        f'  rm -rf {L.RELEASES_DIR}/"$r"',
        "done",
    ]
    if lock_record is not None:
        lines += release_lock_lines(lock_record)
    lines.append("echo '@@finished'")
    return "\n".join(lines) + "\n"


def markers(text: str) -> dict[str, list[str]]:
    """`@@name rest` lines by name (plain output lines are kept under the last marker)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("@@"):
            name, _, rest = line[2:].partition(" ")
            out.setdefault(name, []).append(rest)
    return out


def releases_script() -> str:
    """Every release on the host with its manifest, and which one is current."""
    return (
        f"echo \"@@current $(readlink {L.CURRENT_LINK} 2>/dev/null | sed 's|.*/||')\"\n"
        f"for r in $(ls -1 {L.RELEASES_DIR} 2>/dev/null | grep -v '\\.partial$'); do\n"
        f"  printf '@@release %s ' \"$r\"; tr -d '\\n' < {L.RELEASES_DIR}/\"$r\"/{L.MANIFEST}"
        " 2>/dev/null; echo\n"
        f"  [ -f {L.RELEASES_DIR}/\"$r\"/status ] && "
        f"printf '@@status %s %s\\n' \"$r\" \"$(cat {L.RELEASES_DIR}/\"$r\"/status)\"\n"
        "done\n"
    )


def parse_releases(text: str) -> tuple[str | None, dict[str, dict[str, object]]]:
    """(current release, {release: manifest}) from `releases_script` output."""
    current = None
    out: dict[str, dict[str, object]] = {}
    for line in text.splitlines():
        if line.startswith("@@current "):
            current = line.split(" ", 1)[1].strip() or None
        elif line.startswith("@@release "):
            _, name, *rest = line.split(" ", 2)
            try:
                manifest = json.loads(rest[0]) if rest and rest[0].strip() else {}
            except ValueError:
                manifest = {}
            out[name] = manifest if isinstance(manifest, dict) else {}
        elif line.startswith("@@status "):
            _, name, *rest = line.split(" ", 2)
            if name in out:
                out[name]["status"] = rest[0].strip() if rest else ""
    return current, out


UNVERIFIED = "unverified"


def mark_unverified(release: str) -> str:
    """Mark a release live but not yet seen healthy: a deploy cut off before its health gate
    ended leaves it so on the host, and the next deploy checks its health again (facts read
    the current release's status). The finish of a healthy deploy takes it away."""
    return f"echo {UNVERIFIED} > {q(release_dir(release) + '/status')}\n"


def mark_rolled_back(release: str) -> str:
    """Remember that a release failed and was left, so no rollback ever returns to it."""
    return f"echo rolled-back > {q(release_dir(release) + '/status')}\n"
