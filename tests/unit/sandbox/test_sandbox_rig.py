"""The sandbox rig's pure parts, no engine: recipes, container specs, requests, keys. The
rig on the local engine and real hosts is tested in tests/e2e/test_sandbox_hosts_e2e.py."""

from __future__ import annotations

import shutil
import stat
import subprocess
import tarfile
import textwrap
from io import BytesIO
from pathlib import Path

import pytest

from hostctl.sandbox import container_spec, host_image, host_recipe, hosts
from hostctl.sandbox.errors import SandboxError
from hostctl.sandbox.models import SandboxHost, SandboxHostRequest
from hostctl.sandbox.ssh_key import authorized_keys_tar, ensure_keypair

# ---------------------------------------------------------------- pure parts, no engine


def test_debootstrap_command_is_the_documented_one() -> None:
    assert host_recipe.debootstrap_argv(Path("/b/rootfs"), "http://mirror/debian") == [
        "debootstrap",
        "--variant=minbase",
        "--include=systemd,systemd-sysv,dbus,openssh-server,iproute2,curl,"
        "ca-certificates,python3,docker.io",
        "bookworm",
        "/b/rootfs",
        "http://mirror/debian",
    ]


def test_recipe_hash_changes_with_any_recipe_edit(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe"
    shutil.copytree(host_recipe.RECIPE_DIR, recipe)
    original = host_recipe.recipe_hash(recipe)
    assert original == host_recipe.recipe_hash(host_recipe.RECIPE_DIR)
    assert len(original) == 12 and int(original, 16) >= 0

    daemon_json = recipe / "rootfs/etc/docker/daemon.json"
    daemon_json.write_text(daemon_json.read_text() + " ")
    edited = host_recipe.recipe_hash(recipe)
    assert edited != original

    (recipe / "packages.txt").chmod(0o755)
    assert host_recipe.recipe_hash(recipe) not in (original, edited)
    assert (
        host_recipe.image_ref(recipe) == f"hostctl-sandbox-host:{host_recipe.recipe_hash(recipe)}"
    )


def test_import_changes_carry_the_recipe_label() -> None:
    assert host_recipe.import_changes("0123456789ab") == [
        "ENV container=docker",
        'CMD ["/lib/systemd/systemd"]',
        "LABEL io.hostctl.sandbox.recipe=0123456789ab",
    ]


DEB822 = textwrap.dedent(
    """\
    Types: deb
    # http://snapshot.example/archive/debian/20250520T000000Z
    URIs: http://mirror.example/debian
    Suites: bookworm bookworm-updates
    Components: main

    Types: deb
    URIs: http://mirror.example/debian-security
    Suites: bookworm-security
    Components: main
    """
)


@pytest.mark.parametrize(
    ("text", "deb822", "expected"),
    [
        (DEB822, True, "http://mirror.example/debian"),
        (DEB822.replace("bookworm bookworm-updates", "trixie"), True, None),
        (
            "deb [arch=amd64] http://m.example/debian bookworm main\n",
            False,
            "http://m.example/debian",
        ),
        ("# deb http://old.example/debian bookworm main\n", False, None),
        ("deb http://m.example/debian-security bookworm-security main\n", False, None),
    ],
)
def test_mirror_is_read_from_apt_sources(text: str, deb822: bool, expected: str | None) -> None:
    parse = host_recipe.mirror_from_deb822 if deb822 else host_recipe.mirror_from_one_line
    assert parse(text) == expected


def test_find_mirror_prefers_deb822_and_falls_back_to_debian(tmp_path: Path) -> None:
    assert host_recipe.find_mirror(tmp_path) == "http://deb.debian.org/debian"
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(DEB822)
    assert host_recipe.find_mirror(tmp_path) == "http://mirror.example/debian"


def test_import_answer_parsing() -> None:
    assert host_image.parse_import_answer('{"status":"sha256:abc"}\r\n') == "sha256:abc"
    with pytest.raises(SandboxError, match="docker import failed: no space"):
        host_image.parse_import_answer('{"error":"no space"}')
    with pytest.raises(SandboxError, match="no image id"):
        host_image.parse_import_answer("")


def test_leftover_mounts_are_found_deepest_first(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    work = tmp_path / "work"
    mounts.write_text(
        f"proc {work}/rootfs/proc proc rw 0 0\n"
        f"sysfs {work}/rootfs/proc/sys/fs/binfmt_misc binfmt_misc rw 0 0\n"
        f"tmpfs {tmp_path}/workshop tmpfs rw 0 0\n"
        "/dev/vda / ext4 rw 0 0\n"
    )
    assert host_image.mounts_under(work, mounts) == [
        f"{work}/rootfs/proc/sys/fs/binfmt_misc",
        f"{work}/rootfs/proc",
    ]


def test_container_is_created_as_documented_in_testhosts() -> None:
    request = SandboxHostRequest("gpu-1", {"role": "gpu"}, gpus=1)
    kwargs = container_spec.create_kwargs(
        request, "hostctl-sandbox-host:abc", Path("/s/id_ed25519"), privileged=False
    )
    assert kwargs == {
        "image": "hostctl-sandbox-host:abc",
        "command": ["/lib/systemd/systemd"],
        "name": "hostctl-sandbox-gpu-1",
        "hostname": "gpu-1",
        "labels": {
            "io.hostctl.sandbox": "1",
            "io.hostctl.sandbox.host": "gpu-1",
            "io.hostctl.sandbox.labels": '{"role": "gpu"}',
            "io.hostctl.sandbox.gpus": "1",
            "io.hostctl.sandbox.key": "/s/id_ed25519",
            "io.hostctl.sandbox.mode": "capabilities",
        },
        "network": "hostctl-sandbox",
        "ports": {"22/tcp": ("127.0.0.1", None)},
        "volumes": {
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
            "hostctl-sandbox-gpu-1-docker": {"bind": "/var/lib/docker", "mode": "rw"},
        },
        "tmpfs": {"/run": "", "/run/lock": ""},
        "cgroupns": "host",
        "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
        "stop_signal": "SIGRTMIN+3",
        "tty": True,
        "environment": {"SYSTEMD_COLORS": "0", "COLUMNS": "200"},
        "detach": True,
        "cap_add": [
            "SYS_ADMIN",
            "NET_ADMIN",
            "SYS_PTRACE",
            "MKNOD",
            "AUDIT_CONTROL",
            "NET_RAW",
            "SYS_CHROOT",
        ],
    }
    privileged = container_spec.create_kwargs(
        request, "hostctl-sandbox-host:abc", Path("/s/id_ed25519"), privileged=True
    )
    assert privileged["privileged"] is True and "cap_add" not in privileged
    assert privileged["labels"]["io.hostctl.sandbox.mode"] == "privileged"


@pytest.mark.parametrize(
    ("name", "gpus", "message"),
    [
        ("Edge-1", 0, "sandbox host name 'Edge-1': use 1-32 of a-z"),
        ("-edge", 0, "sandbox host name '-edge'"),
        ("edge_1", 0, "sandbox host name 'edge_1'"),
        ("x" * 33, 0, "sandbox host name 'xxxx"),
        ("edge-1", -1, "sandbox host edge-1: gpus must be >= 0, not -1"),
    ],
)
def test_bad_requests_are_refused(name: str, gpus: int, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        SandboxHostRequest(name, gpus=gpus)


def test_duplicate_host_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="repeated: app-1"):
        hosts.up([SandboxHostRequest("app-1"), SandboxHostRequest("app-1")], tmp_path)


def test_host_record_round_trips_and_builds_the_ssh_command() -> None:
    host = SandboxHost(
        name="app-1",
        address="172.19.0.3",
        ssh_host="127.0.0.1",
        ssh_port=32801,
        ssh_user="root",
        key_path=Path("/s/id_ed25519"),
        container_name="hostctl-sandbox-app-1",
        labels={"role": "app"},
        gpus=0,
    )
    assert SandboxHost.from_json(host.to_json()) == host
    assert host.ssh_argv("systemctl", "is-active", "docker") == [
        "ssh",
        "-i",
        "/s/id_ed25519",
        "-p",
        "32801",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "root@127.0.0.1",
        "systemctl",
        "is-active",
        "docker",
    ]


def test_key_pair_is_made_once_private_and_usable_by_openssh(tmp_path: Path) -> None:
    key = ensure_keypair(tmp_path / "state")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = Path(f"{key}.pub").read_text()
    assert public.startswith("ssh-ed25519 ") and public.endswith(" hostctl-sandbox\n")
    assert ensure_keypair(tmp_path / "state") == key
    assert Path(f"{key}.pub").read_text() == public
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True
    )
    assert derived.stdout.split()[:2] == public.split()[:2]


def test_authorized_keys_archive_has_the_modes_sshd_requires() -> None:
    with tarfile.open(fileobj=BytesIO(authorized_keys_tar(b"ssh-ed25519 AAAA x\n"))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert {n: (m.isdir(), m.mode, m.uid) for n, m in members.items()} == {
            ".ssh": (True, 0o700, 0),
            ".ssh/authorized_keys": (False, 0o600, 0),
        }
        authorized = tar.extractfile(members[".ssh/authorized_keys"])
        assert authorized is not None and authorized.read() == b"ssh-ed25519 AAAA x\n"


def test_the_sandbox_inventory_keeps_the_sources_persist_and_validates(tmp_path: Path) -> None:
    """`sandbox up -i INV` puts its own SSH settings in the copy, but whether connections
    are kept (ssh.persist) stays the inventory's to say."""
    from hostctl.cli.sandbox import write_inventory
    from hostctl.validate import load_site

    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "a.yml").write_text(
        "kind: service\nname: a\nproject: p\nimage: app:1\n")
    source = tmp_path / "site.yml"
    source.write_text("site: t\nssh: {persist: 45s, user: deploy}\n"
                      "hosts: {app-1: {address: 10.0.0.1}}\nspecs: [specs/*.yml]\n")
    host = SandboxHost(name="app-1", address="172.19.0.3", ssh_host="127.0.0.1",
                       ssh_port=32801, ssh_user="root", key_path=tmp_path / "id",
                       container_name="hostctl-sandbox-app-1")
    state = tmp_path / "state"
    state.mkdir()
    site = load_site(str(write_inventory(str(source), [host], state)))
    ssh = site.inventory.hosts["app-1"].ssh
    assert (ssh.persist, ssh.user, ssh.port) == (45.0, "root", 32801)
    source.write_text(source.read_text().replace("persist: 45s, ", ""))
    site = load_site(str(write_inventory(str(source), [host], state)))
    assert site.inventory.hosts["app-1"].ssh.persist == 0
