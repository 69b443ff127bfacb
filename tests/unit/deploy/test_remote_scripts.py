"""The scripts hostctl sends to hosts: valid POSIX sh, and their output parsers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hostctl.deploy.activate import activate
from hostctl.deploy.health_gate import health_script, parse_health
from hostctl.deploy.plan import FileAction, HostPlan, UnitAction
from hostctl.hosts import scripts as S
from hostctl.hosts.facts import facts_script, normalise_ref, parse_facts
from hostctl.hosts.lock import break_lock_script
from hostctl.render.probe import HealthProbe

PLAN = HostPlan(
    "h",
    files=(FileAction("/etc/systemd/system/hostctl-a-1.service", "write", 0o644),
           FileAction("/etc/hostctl/env/a.env", "write", 0o600, True),
           FileAction("/etc/systemd/system/hostctl-old-1.service", "remove")),
    units=(UnitAction("hostctl-a-1.service", "restart", "unit changed"),
           UnitAction("hostctl-old-1.service", "stop", "left the specs")),
    networks=("hostctl-shop",), enable=("hostctl-a-1.service",),
)

SCRIPTS = {
    "facts": facts_script("/usr/bin/docker"),
    "facts+lock": facts_script("/usr/bin/docker", '{"who": "o\'brien"}'),
    "stage": S.stage_release("r1", {"/etc/hostctl/env/a.env": (b"A=it's $x\n", 0o600)},
                             ["/etc/x"], {"release": "r1", "note": "it's"}),
    "activate": activate(PLAN, "r1", "/usr/bin/docker", {"hostctl-shop": "shop"}),
    "activate-none": activate(PLAN, None, "/usr/bin/docker", {}),
    "health": health_script([
        HealthProbe("hostctl-a-1.service", "hostctl-a-1", "http", 8080, "/h'x"),
        HealthProbe("hostctl-b-1.service", "hostctl-b-1", "tcp", 9000),
        HealthProbe("hostctl-c-1.service", "hostctl-c-1", "command"),
        HealthProbe("hostctl-d-1.service", "hostctl-d-1", "running")], "/usr/bin/docker"),
    "finish": S.finish_script('{"run": "x"}', {"msg": "it's done"}, protect=["r1"]),
    "break": break_lock_script('{"who": "x"}', '{"who": "y"}'),
    "releases": S.releases_script(),
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripts_are_valid_posix_sh(name: str) -> None:
    for shell in ("sh", "bash"):
        res = subprocess.run([shell, "-n"], input=S.PRELUDE + SCRIPTS[name], text=True,
                             capture_output=True, timeout=10)
        assert res.returncode == 0, res.stderr


def test_activate_orders_stop_install_enable_reload_restart() -> None:
    text = SCRIPTS["activate"]
    order = [text.index(s) for s in (
        "step stop systemctl stop -- hostctl-old-1.service",
        "/usr/bin/docker rm -f hostctl-old-1",
        "step install put /var/lib/hostctl/releases/r1/files/etc/systemd/system/"
        "hostctl-a-1.service /etc/systemd/system/hostctl-a-1.service 0644",
        "step install put /var/lib/hostctl/releases/r1/files/etc/hostctl/env/a.env "
        "/etc/hostctl/env/a.env 0600",
        "step remove rm -f /etc/systemd/system/hostctl-old-1.service",
        "step enable systemctl enable --no-reload -- hostctl-a-1.service",
        "step reload systemctl daemon-reload",
        "ln -sfn releases/r1 /var/lib/hostctl/current.new",
        "step network /usr/bin/docker network create",
        "unit_step restart hostctl-a-1.service",
        "echo '@@applied'")]
    assert order == sorted(order)
    assert "rm -f /var/lib/hostctl/current" in SCRIPTS["activate-none"]
    # one reload: enable does not reload again when a reload follows it
    assert SCRIPTS["activate"].count("daemon-reload") == 1


def test_enabling_without_new_files_leaves_the_reload_to_systemctl_enable() -> None:
    """A unit disabled by hand, its files unchanged: no daemon-reload of hostctl's, so
    `systemctl enable` does its own (systemd then reports the unit enabled)."""
    text = activate(HostPlan("h", enable=("hostctl-a-1.service",)), "r1", "/usr/bin/docker", {})
    assert "step enable systemctl enable -- hostctl-a-1.service\n" in text
    assert "--no-reload" not in text and "daemon-reload" not in text


def test_a_unit_that_fails_to_start_says_why_in_the_deploy(tmp_path: Path) -> None:
    """unit_step on a real shell, with systemctl and journalctl stubs that answer as
    systemd's do for a unit whose ExecStartPre failed; then deploy's reading of it."""
    from hostctl.deploy.outcome import failure_text as _failure_text

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(
        "#!/bin/sh\ncase \"$1\" in\n"
        "  start) echo 'Job for hostctl-gpu-1.service failed because the control process "
        "exited with error code.' >&2; echo 'See \"systemctl status hostctl-gpu-1.service\" "
        "for details.' >&2; exit 1;;\n"
        "  is-active) [ \"$4\" = hostctl-ok-1.service ];;\nesac\n")
    (bin_dir / "journalctl").write_text(
        "#!/bin/sh\necho 'an older line'\necho 'hostctl-gpu-1.service cannot start: it needs "
        "1 GPU(s) and 0 of this host'\\''s 1 are free (held by 0=r7)'\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    script = S.PRELUDE.replace("[ -d /var/lib/hostctl/lock ]", "[ -d /nonexistent ]") + \
        "unit_step start hostctl-ok-1.service hostctl-gpu-1.service\necho '@@applied'\n"
    res = subprocess.run(["sh", "-s"], input=script, text=True, capture_output=True,
                         timeout=10, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert res.returncode == 1 and "@@applied" not in res.stdout
    assert _failure_text(res.stdout, res.stderr) == (
        'step start: See "systemctl status hostctl-gpu-1.service" for details.; '
        "hostctl-gpu-1.service: hostctl-gpu-1.service cannot start: it needs 1 GPU(s) and 0 of "
        "this host's 1 are free (held by 0=r7)")


def test_failure_text_without_unit_logs() -> None:
    from hostctl.deploy.outcome import failure_text as _failure_text

    assert _failure_text("@@staged\n@@failed install\ncp: cannot create x\n", "") == \
        "step install: cp: cannot create x"
    assert _failure_text("@@staged\n", "sh: 1: broken\n") == "sh: 1: broken"


def test_staged_files_round_trip_through_base64_with_their_mode(tmp_path: object) -> None:
    """Run the staging part for real in a temp root: the bytes and mode come out exact."""
    import os
    import tempfile

    data = bytes(range(256)) + b"\nHOSTCTL_EOF\n$x `y` 'z'\n"
    root = tempfile.mkdtemp()
    script = S.stage_release("r1", {"/etc/hostctl/env/a.env": (data, 0o600)}, [], {"a": 1})
    script = script.replace("/var/lib/hostctl/releases", root + "/releases")
    globs = "/etc/systemd/system/hostctl-*.service /etc/systemd/system/hostctl-*.timer " \
            "/etc/hostctl/env/*.env"
    script = script.replace(globs, root + "/nothing-*")
    res = subprocess.run(["sh", "-s"], input=(S.PRELUDE + script).encode(), capture_output=True,
                         timeout=10)
    assert res.returncode == 0, res.stderr
    staged = os.path.join(root, "releases/r1/files/etc/hostctl/env/a.env")
    with open(staged, "rb") as fh:
        assert fh.read() == data
    assert os.stat(staged).st_mode & 0o777 == 0o600


CAPTURED = """\
@@hostctl-facts 1
@@now 1795000000
@@lock held 1794999000
{"who": "alice@laptop", "run": "abc", "started": 1794999000, "command": "hostctl deploy"}
@@docker
ok 20.10.24+dfsg1
@@files
{ones}  /etc/systemd/system/hostctl-a-1.service
{twos}  /etc/hostctl/env/a.env
@@contents
/etc/systemd/system/hostctl-a-1.service W1VuaXRdCg==
@@unitfiles
hostctl-a-1.service
hostctl-job-x.timer
hostctl-b-1.service
hostctl-c-1.service
@@units
hostctl-a-1.service loaded active running hostctl service a #1 (project shop)
hostctl-job-x.timer      loaded active waiting hostctl job x, daily
● hostctl-c-1.service loaded failed failed hostctl service c #1 (project shop)
@@enabled
hostctl-a-1.service
hostctl-job-x.timer
@@images
hostctl-demo-app\t1.0\t<none>\tsha256:aaa
registry.example.org/x\t3\tsha256:ddd\tsha256:bbb
<none>\t<none>\t<none>\tsha256:ccc
@@containers
hostctl-a-1\trunning\tabc123
@@networks
hostctl-shop
@@runtimes
{"io.containerd.runc.v2":{"path":"runc"},"nvidia":{"path":"nvidia-container-runtime"}}
@@cluster
api {"who": "alice@laptop", "time": "2026-11-22T06:00:00Z"}
broken {not json
@@current
releases/20261122T063000Z-abc123
@@manifest
{"release": "20261122T063000Z-abc123", "files": []}
@@releases
20261122T062000Z-aaaaaa
20261122T063000Z-abc123
@@end
""".replace("\\t", "\t").replace("{ones}", "1" * 64).replace("{twos}", "2" * 64)


def test_facts_parser_reads_captured_output() -> None:
    f = parse_facts("h", CAPTURED)
    assert f.now == 1795000000
    assert f.lock.held and f.lock.holder["who"] == "alice@laptop" and f.lock.since == 1794999000
    assert f.docker_ok and f.docker_detail == "20.10.24+dfsg1"
    assert f.files == {"/etc/systemd/system/hostctl-a-1.service": "1" * 64,
                       "/etc/hostctl/env/a.env": "2" * 64}
    assert f.contents == {"/etc/systemd/system/hostctl-a-1.service": b"[Unit]\n"}
    assert {n: (u.load, u.active, u.sub, u.file_state) for n, u in f.units.items()} == {
        "hostctl-a-1.service": ("loaded", "active", "running", "enabled"),
        "hostctl-job-x.timer": ("loaded", "active", "waiting", "enabled"),
        # not loaded by systemd: as `systemctl show` would load and describe it
        "hostctl-b-1.service": ("loaded", "inactive", "dead", "disabled"),
        # systemd before 245 marks a failed unit even with --plain
        "hostctl-c-1.service": ("loaded", "failed", "failed", "disabled")}
    assert f.images == {"hostctl-demo-app:1.0": "sha256:aaa",
                        "registry.example.org/x:3": "sha256:bbb",
                        "registry.example.org/x@sha256:ddd": "sha256:bbb"}
    assert f.containers["hostctl-a-1"].spec_hash == "abc123"
    assert f.networks == frozenset({"hostctl-shop"})
    assert f.current_release == "20261122T063000Z-abc123"
    assert f.releases == ("20261122T062000Z-aaaaaa", "20261122T063000Z-abc123")
    assert f.runtimes == frozenset({"io.containerd.runc.v2", "nvidia"})
    # an unreadable handoff record still says the service lives in the cluster
    assert f.handed_off == {"api": {"who": "alice@laptop", "time": "2026-11-22T06:00:00Z"},
                            "broken": {}}


def test_facts_read_the_current_releases_status() -> None:
    """A release a deploy left unverified (hosts.scripts.mark_unverified) says so."""
    assert parse_facts("h", CAPTURED).current_status == ""
    marked = CAPTURED.replace("@@manifest\n", "@@status\nunverified\n\n@@manifest\n")
    assert parse_facts("h", marked).current_status == "unverified"


def test_facts_without_runtimes_or_handoffs() -> None:
    text = CAPTURED.split("@@runtimes")[0]
    f = parse_facts("h", text + "@@runtimes\n@@cluster\n@@end\n")
    assert f.runtimes is None and f.handed_off == {}


def test_facts_script_is_valid_shell() -> None:
    import subprocess

    from hostctl.hosts.facts import facts_script

    for lock in (None, '{"who": "x"}'):
        for runtimes in (True, False):
            subprocess.run(["sh", "-n"], input=facts_script("docker", lock, runtimes),
                           text=True, check=True)
    assert "docker info" in facts_script("docker") and \
        "docker info" not in facts_script("docker", runtimes=False)


def test_truncated_answer_is_an_error() -> None:
    from hostctl.hosts.facts import FactsError

    with pytest.raises(FactsError):
        parse_facts("h", CAPTURED.split("@@releases")[0])


@pytest.mark.parametrize(("ref", "short"), [
    ("busybox", "busybox:latest"), ("docker.io/library/busybox:1", "busybox:1"),
    ("docker.io/me/app:2", "me/app:2"), ("reg:5000/a/b", "reg:5000/a/b:latest"),
    ("reg:5000/a/b:3", "reg:5000/a/b:3"), ("a@sha256:" + "0" * 64, "a@sha256:" + "0" * 64)])
def test_image_references_are_normalised_like_docker_shows_them(ref: str, short: str) -> None:
    assert normalise_ref(ref) == short


def test_health_output_is_parsed_with_logs_of_failures() -> None:
    out = ("@@health hostctl-a-1.service ok 2\n@@health hostctl-b-1.service fail activating\n"
           "@@log line one\n@@log line two\n@@done\n")
    got = parse_health(out, ["hostctl-a-1.service", "hostctl-b-1.service", "hostctl-c.service"])
    assert [(h.unit, h.ok, h.log) for h in got] == [
        ("hostctl-a-1.service", True, ()),
        ("hostctl-b-1.service", False, ("line one", "line two")),
        ("hostctl-c.service", False, ())]
    assert got[2].detail == "no verdict before the time ran out"


def test_facts_hash_and_content_lines_match_a_process_per_file(tmp_path: Path) -> None:
    """One sha256sum for all files says what a sha256sum per file said (a glob matching
    nothing, a directory and a name with a space left out or kept as they were), and the
    contents section is `PATH BASE64` per regular file, on sh and bash."""
    from hostctl.hosts.facts import content_lines, hash_lines

    for name, data in (("a.service", b"x\n"), ("b c.service", b""), ("d.env", b"\x00\xff")):
        (tmp_path / name).write_bytes(data)
    (tmp_path / "dir.service").mkdir()
    globs = f"{tmp_path}/*.service {tmp_path}/*.env {tmp_path}/none-*.timer {tmp_path}/gone"
    per_file = (f'for f in {globs}; do [ -f "$f" ] && sha256sum "$f"; done\n'
                f"for f in {globs}; do [ -f \"$f\" ] && "
                "printf '%s %s\\n' \"$f\" \"$(base64 -w0 \"$f\")\"; done\n")
    script = "\n".join([*hash_lines(globs), *content_lines(globs)]) + "\n"
    for shell in ("sh", "bash"):
        want = subprocess.run([shell, "-s"], input=per_file.encode(), capture_output=True,
                              timeout=10)
        got = subprocess.run([shell, "-s"], input=script.encode(), capture_output=True,
                             timeout=10)
        assert got.stdout == want.stdout and got.returncode == want.returncode, got.stderr
        assert got.stdout.count(b"\n") == 6
    empty = "\n".join(hash_lines(f"{tmp_path}/none-*")) + "\necho done\n"
    res = subprocess.run(["sh", "-s"], input=empty.encode(), capture_output=True, timeout=10)
    assert res.stdout == b"done\n" and res.stderr == b""


def test_unit_and_release_names_come_from_the_glob_as_ls_gave_them(tmp_path: Path) -> None:
    """The facts script lists units and releases with the shell's glob instead of `ls | grep`
    (a process less each): the same names on sh and bash (here in the same order too; the
    parser does not depend on it)."""
    from hostctl.hosts.facts import release_names_lines, unit_names_lines

    units, releases = tmp_path / "units", tmp_path / "releases"
    for name in ("hostctl-b.service", "hostctl-a-1.service", "hostctl-t@.service",
                 "hostctl-n.timer", "other.service", "hostctl-Z.service"):
        (units / name).parent.mkdir(exist_ok=True)
        (units / name).write_text("")
    (units / "hostctl-masked.service").symlink_to("/dev/null")  # `systemctl mask`: kept
    for name in ("20261201T000000Z-a", "20261202T000000Z-b.partial", "20261130T000000Z-c"):
        (releases / name).mkdir(parents=True)
    old = (f"units=$(cd {units} && ls -1 hostctl-*.service hostctl-*.timer 2>/dev/null "
           "| grep -v '@\\.service$')\necho $units\n"
           f"ls -1 {releases} 2>/dev/null | grep -v '\\.partial$'\n")
    new = "\n".join([*unit_names_lines(str(units)), "echo $units",
                     *release_names_lines(str(releases))]) + "\n"
    for shell in ("sh", "bash"):
        want = subprocess.run([shell, "-s"], input=old, text=True, capture_output=True,
                              env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}, timeout=10)
        got = subprocess.run([shell, "-s"], input=new, text=True, capture_output=True,
                             env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}, timeout=10)
        assert got.stdout == want.stdout and got.stderr == "", got.stderr
        assert got.stdout.splitlines() == [
            "hostctl-Z.service hostctl-a-1.service hostctl-b.service hostctl-masked.service "
            "hostctl-n.timer", "20261130T000000Z-c", "20261201T000000Z-a"]
    empty = "\n".join([*unit_names_lines(str(tmp_path / "none")), 'echo "[$units]"',
                       *release_names_lines(str(tmp_path / "none"))]) + "\n"
    res = subprocess.run(["sh", "-s"], input=empty, text=True, capture_output=True, timeout=10)
    assert res.stdout == "[]\n" and res.stderr == ""


def test_unit_state_lines_list_unit_files_and_the_enabled_links(tmp_path: Path) -> None:
    """On sh, over a unit folder: every unit file but templates, and as enabled only the
    units `systemctl enable` linked into a .wants or .requires folder."""
    from hostctl.hosts.facts import split_sections, unit_state_lines

    d = tmp_path / "system"
    (d / "multi-user.target.wants").mkdir(parents=True)
    (d / "timers.target.requires").mkdir()
    for name in ("hostctl-a-1.service", "hostctl-b-1.service", "hostctl-j@.service",
                 "hostctl-j.timer", "other.service"):
        (d / name).write_text("[Unit]\n")
    (d / "multi-user.target.wants" / "hostctl-a-1.service").symlink_to(
        d / "hostctl-a-1.service")
    (d / "timers.target.requires" / "hostctl-j.timer").symlink_to(d / "hostctl-j.timer")
    (d / "multi-user.target.wants" / "hostctl-b-1.service").write_text("not a link\n")
    script = "\n".join(["systemctl() { echo \"asked: $*\"; }", *unit_state_lines(str(d))])
    res = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True,
                         timeout=10)
    assert res.returncode == 0, res.stderr
    sections = split_sections(res.stdout)
    assert sections["unitfiles"] == ["hostctl-a-1.service", "hostctl-b-1.service",
                                     "hostctl-j.timer"]
    assert sections["units"] == [
        "asked: list-units --all --plain --no-legend --full -- hostctl-a-1.service "
        "hostctl-b-1.service hostctl-j.timer"]
    assert sorted(sections["enabled"]) == ["hostctl-a-1.service", "hostctl-j.timer"]
