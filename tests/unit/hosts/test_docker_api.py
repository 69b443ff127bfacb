"""Docker's state through one `docker system dial-stdio`: the requests, the shell that sends
them and falls back to the docker commands, and the answers read back.

The captured answers (data/docker_api_answers.http) are what Docker 20.10's engine on a
sandbox host wrote to dial-stdio for CONTAINERS, IMAGES, NETWORKS and INFO: two chunked
answers and two with a Content-Length, as Go's server chooses by size."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from hostctl.hosts import docker_api as A
from hostctl.hosts.facts import FactsError, facts_script, parse_facts

CAPTURED = (Path(__file__).parent / "data" / "docker_api_answers.http").read_bytes()
PATHS = [A.CONTAINERS, A.IMAGES, A.NETWORKS, A.INFO]
IMAGE_ID = "sha256:77853141b34d4a16ee0621a9773943e3a5aa45f6e8144ab842ef7c2398318afc"


def encoded(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_requests_are_pipelined_and_the_last_closes() -> None:
    text = A.requests(PATHS).decode()
    assert text.count("GET ") == 4 and text.count("Connection: close") == 1
    assert text.endswith("GET /info HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
    assert text.startswith('GET /containers/json?all=1&filters=%7B%22label%22%3A%5B%22io.'
                           'hostctl.managed%3Dtrue%22%5D%7D HTTP/1.1\r\nHost: docker\r\n\r\n')


def test_the_captured_answers_read_as_docker_shows_them() -> None:
    found, images, networks, info = A.parse_answers(encoded(CAPTURED))
    assert sorted(A.container_name(c) for c in A.containers(found)) == [
        "hostctl-svc-0-1", "hostctl-svc-1-1"]
    assert A.images(images) == {"hostctl-demo-app:1.0": IMAGE_ID}
    assert A.networks(networks) == {"hostctl-bench"}
    assert A.runtimes(info) == {"runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux"}


def test_facts_from_the_api_section() -> None:
    text = ("@@hostctl-facts 1\n@@now 5\n@@files\n@@contents\n@@units\n"
            f"@@api\n{encoded(CAPTURED)}\n@@cluster\n@@current\n@@status\n\n@@manifest\n\n"
            "@@releases\n@@end\n")
    facts = parse_facts("h", text)
    assert facts.docker_ok and facts.images == {"hostctl-demo-app:1.0": IMAGE_ID}
    assert {n: (c.state, len(c.spec_hash)) for n, c in facts.containers.items()} == {
        "hostctl-svc-0-1": ("running", 12), "hostctl-svc-1-1": ("running", 12)}
    assert facts.networks == {"hostctl-bench"} and "runc" in (facts.runtimes or ())


@pytest.mark.parametrize(("raw", "says"), [
    (CAPTURED[:len(CAPTURED) // 2], "cut short"),
    (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 17\r\n\r\n{\"message\":\"no\"}\n",
     "Docker answered 500 Internal Server Error: {\"message\":\"no\"}"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnot", "is not JSON"),
    (b"SSH-2.0-not http\r\n", "cut short"),
])
def test_an_answer_that_is_not_docker_s_is_an_error(raw: bytes, says: str) -> None:
    with pytest.raises(A.DockerApiError, match=r"^Docker") as err:
        A.parse_answers(encoded(raw))
    assert says in str(err.value)
    text = f"@@api\n{encoded(raw)}\n@@end\n"
    with pytest.raises(FactsError, match=r"^h: Docker"):
        parse_facts("h", text)


def test_fewer_answers_than_asked_is_an_error() -> None:
    one = CAPTURED[:CAPTURED.index(b"HTTP/1.1", 10)]
    assert len(A.parse_answers(encoded(one))) == 1
    with pytest.raises(FactsError, match="cut short"):
        parse_facts("h", f"@@api\n{encoded(one)}\n@@end\n")
    with pytest.raises(A.DockerApiError, match="not base64"):
        A.parse_answers("@@@")


def fake_docker(tmp_path: Path, dial: str) -> str:
    """A docker client for the shell tests: `system dial-stdio` runs `dial` (sh), every
    other command prints its arguments as the docker commands' sections would."""
    path = tmp_path / "docker"
    path.write_text("#!/bin/sh\n"
                    f'if [ "$1 $2" = "system dial-stdio" ]; then {dial}; fi\n'
                    'case "$1" in ps) printf "c1\\trunning\\tabc\\n";; '
                    'image) printf "app\\t1\\t<none>\\tsha256:1\\n";; '
                    'network) echo net1;; info) echo \'{"runc": {}}\';; esac\n')
    path.chmod(0o755)
    return str(path)


def run_docker_part(docker: str, tmp_path: Path) -> str:
    """The facts script's Docker part (its api lines, wait, its answer lines) on sh."""
    from hostctl.hosts.facts import docker_cli_lines

    script = "\n".join(["T=$(mktemp -d)", *A.api_lines(docker, PATHS), "wait",
                        *A.answer_lines(docker_cli_lines(docker, True)),
                        'rm -rf "$T"']) + "\n"
    res = subprocess.run(["sh", "-s"], input=script.encode(), capture_output=True, timeout=10,
                         env={**os.environ, "TMPDIR": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    return res.stdout.decode()


def test_the_shell_sends_the_requests_and_returns_the_answers_byte_for_byte(
        tmp_path: Path) -> None:
    (tmp_path / "answers").write_bytes(CAPTURED)
    docker = fake_docker(tmp_path, f'cat > {tmp_path}/asked; cat {tmp_path}/answers; exit 0')
    out = run_docker_part(docker, tmp_path)
    assert (tmp_path / "asked").read_bytes() == A.requests(PATHS)
    mark, body, rest = out.split("\n", 2)
    assert mark == "@@api" and base64.b64decode(body) == CAPTURED and rest == ""


@pytest.mark.parametrize("dial", [
    'echo "docker: \'system dial-stdio\' is not a docker command." >&2; exit 1',  # too old
    "cat >/dev/null; exit 0",  # ran, but said nothing
])
def test_without_dial_stdio_the_docker_commands_answer(tmp_path: Path, dial: str) -> None:
    out = run_docker_part(fake_docker(tmp_path, dial), tmp_path)
    assert "@@api" not in out
    facts = parse_facts("h", out + "@@end\n")
    assert facts.docker_ok and facts.images == {"app:1": "sha256:1"}
    assert list(facts.containers) == ["c1"] and facts.networks == {"net1"}
    assert facts.runtimes == {"runc"}


def test_docker_down_is_said_as_the_docker_commands_say_it(tmp_path: Path) -> None:
    path = tmp_path / "docker"
    path.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at "
                    "unix:///var/run/docker.sock. Is the docker daemon running?' >&2\nexit 1\n")
    path.chmod(0o755)
    facts = parse_facts("h", run_docker_part(str(path), tmp_path) + "@@end\n")
    assert not facts.docker_ok
    assert facts.docker_detail == ("Cannot connect to the Docker daemon at "
                                   "unix:///var/run/docker.sock. Is the docker daemon running?")


def test_only_public_files_that_differ_send_their_content(tmp_path: Path) -> None:
    """`expected` names the public files a deploy would write: a file the same on the host
    sends nothing, one that differs sends its bytes, a missing one nothing; a file outside
    `expected` (a secret one) never."""
    from hostctl.hosts.facts import changed_content_lines, hash_lines

    same, other, secret = (tmp_path / "same.service", tmp_path / "other.service",
                           tmp_path / "a.env")
    same.write_bytes(b"same\n")
    other.write_bytes(b"live \x00\xff\n")
    secret.write_bytes(b"TOKEN=x\n")
    sha = {p: subprocess.run(["sha256sum", str(p)], capture_output=True, text=True,
                             check=True).stdout.split()[0] for p in (same, other)}
    expected = {str(same): sha[same], str(other): "0" * 64,
                str(tmp_path / "gone.service"): "1" * 64}
    globs = f"{tmp_path}/*.service {tmp_path}/*.env"
    script = "\n".join(["T=$(mktemp -d)", *hash_lines(globs, into='"$T/sums"'), "echo @@c",
                        *changed_content_lines(expected), 'rm -rf "$T"']) + "\n"
    (tmp_path / "t").mkdir()
    for shell in ("sh", "bash"):
        res = subprocess.run([shell, "-s"], input=script.encode(), capture_output=True,
                             timeout=10, env={**os.environ, "TMPDIR": str(tmp_path / "t")})
        assert res.returncode == 0, res.stderr
        hashes, contents = res.stdout.decode().split("@@c\n")
        assert len(hashes.splitlines()) == 3  # every file hashed, the secret one too
        assert contents == f"{other} {base64.b64encode(other.read_bytes()).decode()}\n"
    none = "\n".join(["T=$(mktemp -d)", *hash_lines(f"{tmp_path}/none-*", into='"$T/sums"'),
                      *changed_content_lines({f"{tmp_path}/none-a": "1" * 64}),
                      'rm -rf "$T"', "echo done"]) + "\n"
    res = subprocess.run(["sh", "-s"], input=none.encode(), capture_output=True, timeout=10)
    assert res.stdout == b"done\n" and res.stderr == b""


def test_facts_script_sends_expected_hashes_and_asks_info_on_gpu_hosts_only() -> None:
    with_gpus = facts_script("/usr/bin/docker", runtimes=True, expected={"/etc/x": "a" * 64})
    without = facts_script("/usr/bin/docker", runtimes=False, expected={})
    assert f"{'a' * 64}  /etc/x\nHOSTCTL_WANT" in with_gpus
    assert "GET /info" in with_gpus and "GET /info" not in without
    assert "info --format" in with_gpus and "info --format" not in without
    for script in (with_gpus, without):
        subprocess.run(["sh", "-n"], input=script, text=True, check=True)


def test_status_reads_the_engine_s_version_and_containers() -> None:
    """`hostctl status` asks VERSION and CONTAINERS: the API's answers read as the docker
    commands' (`ok VERSION`; name, image, state, Docker's status text, hostctl's labels)."""
    from hostctl.ops.status import StatusError, parse_status

    body = b'{"Version":"20.10.24+dfsg1","ApiVersion":"1.41"}\n'
    version = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    containers = CAPTURED[:CAPTURED.index(b"HTTP/1.1", 10)]
    text = ("@@hostctl-status 1\n@@now 5\n@@release r1\n"
            f"@@api\n{encoded(version + containers)}\n@@end\n")
    st = parse_status("h", text)
    assert (st.docker_ok, st.docker_detail) == (True, "20.10.24+dfsg1")
    c = st.containers["hostctl-svc-0-1"]
    assert (c.image, c.state, c.status.startswith("Up "), c.health) == (
        "hostctl-demo-app:1.0", "running", True, "healthy")
    assert {k: v for k, v in c.labels.items() if k != "spec-hash"} == {
        "instance": "1", "kind": "service", "project": "bench", "workload": "svc-0"}
    with pytest.raises(StatusError, match=r"^h: Docker's answer was cut short \(1 of 2\)$"):
        parse_status("h", f"@@api\n{encoded(version)}\n@@end\n")


@pytest.mark.parametrize("body", [
    b'{"not": "a list"}', b'["a", 1, null, {"Id": 2, "RepoTags": "x:1", "Names": "/c"}]',
    b'[{"Names": [1, "/ok"], "State": null, "Labels": ["x"]}]', b"null"])
def test_answers_of_another_shape_read_as_nothing_rather_than_fail(body: bytes) -> None:
    """A host whose engine (or whatever answers in its place) sends JSON of another shape:
    the facts read what fits and nothing else, never an exception."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    facts = parse_facts("h", f"@@api\n{encoded(answer * 4)}\n@@end\n")
    assert facts.images == {} and facts.networks == frozenset()
    assert set(facts.containers) <= {"ok"}
    assert facts.runtimes is None


# -- curl on the default engine's socket --------------------------------------------------

ENGINE = Path(A.DEFAULT_SOCKET)
needs_engine = pytest.mark.skipif(
    not ENGINE.is_socket(), reason=f"no Docker engine at {ENGINE} here (scripts/ci-setup.sh "
    "starts one)")


def ask_engine(docker: str, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    """The facts script's Docker part against this machine's real engine."""
    from hostctl.hosts.facts import docker_cli_lines

    script = "\n".join(["T=$(mktemp -d)", *A.api_lines(docker, PATHS), "wait",
                        *A.answer_lines(docker_cli_lines(docker, True)),
                        'rm -rf "$T"']) + "\n"
    res = subprocess.run(["sh", "-s"], input=script.encode(), capture_output=True, timeout=60,
                         env={**os.environ, "TMPDIR": str(tmp_path), **(env or {})})
    assert res.returncode == 0, res.stderr
    return res.stdout.decode()


@needs_engine
def test_curl_on_the_socket_reads_as_dial_stdio_does(tmp_path: Path) -> None:
    """The same engine asked both ways: the same facts (raw answers, chunked or not)."""
    wrapper = tmp_path / "docker"  # not the standard client: asked through dial-stdio
    wrapper.write_text("#!/bin/sh\nexec /usr/bin/docker \"$@\"\n")
    wrapper.chmod(0o755)

    def facts(docker: str) -> object:
        f = parse_facts("h", ask_engine(docker, tmp_path) + "@@end\n")
        return f.docker_ok, f.images, f.containers, f.networks, f.runtimes

    curl, dial = facts("/usr/bin/docker"), facts(str(wrapper))
    assert curl == dial
    assert curl[0] and curl[4]  # the engine answered, with its runtimes


@needs_engine
@pytest.mark.parametrize(("docker", "env", "config", "asks_curl"), [
    ("/usr/bin/docker", {}, None, True),
    ("docker", {}, '{"auths": {}}', True),
    ("/usr/bin/docker", {"DOCKER_HOST": "unix:///var/run/docker.sock"}, None, False),
    ("/usr/bin/docker", {"DOCKER_CONTEXT": "remote"}, None, False),
    ("/usr/bin/docker", {}, '{"currentContext": "remote"}', False),
    ("/opt/docker/bin/docker", {}, None, False),
])
def test_curl_is_asked_only_for_the_standard_client_on_its_default_engine(
        tmp_path: Path, docker: str, env: dict[str, str], config: str | None,
        asks_curl: bool) -> None:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "curl").write_text(f"#!/bin/sh\necho x >> {tmp_path}/curl-ran\nexit 7\n")
    (stubs / "curl").chmod(0o755)
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    if config is not None:
        (home / ".docker" / "config.json").write_text(config)
    ask_engine(docker, tmp_path, {"PATH": f"{stubs}:{os.environ['PATH']}", "HOME": str(home),
                                  **env})
    assert (tmp_path / "curl-ran").exists() == asks_curl


def test_without_curl_the_standard_client_is_asked_through_dial_stdio(tmp_path: Path) -> None:
    """A host without curl: `docker` (the standard client) carries the questions itself."""
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "mktemp", "base64", "rm", "cat", "tail", "grep"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    (tmp_path / "answers").write_bytes(CAPTURED)
    fake = fake_docker(tmp_path, f'cat > {tmp_path}/asked; cat {tmp_path}/answers; exit 0')
    (bin_dir / "docker").symlink_to(fake)
    out = ask_engine("docker", tmp_path, {"PATH": str(bin_dir)})
    assert (tmp_path / "asked").read_bytes() == A.requests(PATHS)
    assert out.split("\n", 2)[:2] == ["@@api", base64.b64encode(CAPTURED).decode()]
