"""Docker's state read in one go: the host scripts' questions to the engine.

A script that asked `docker ps`, `docker image ls` and `docker network ls` started a docker
client for each; the client's own start-up (~20 ms of CPU) was most of what each cost, and
on a host with little CPU to spare (ten sandbox hosts on two cores) most of a no-op
deploy's time. The script now sends the HTTP/1.1 requests of Docker's Engine API all at once
and hands back the raw answers base64-encoded (`api_lines`); `parse_answers` reads them.
They go through curl on the engine's socket when the standard client would ask the default
engine (no client start at all), else through one `docker system dial-stdio` (Docker 18.09
and later), which connects its standard input and output to the engine the client is
configured for (DOCKER_HOST, context); the engine answers them in order, the last asks to
close.

Where the way chosen gives no answer (an older client, or Docker down), the script falls
back to the docker commands it ran before, whose output and error messages deploy and status already
read (the fallback keeps "Docker is not running"'s text as it was).

Pure: builds shell text and parses bytes; the scripts that use it run it.
"""

from __future__ import annotations

import io
import json
import shlex
import urllib.parse
from collections.abc import Sequence
from typing import Any

from hostctl.layout import MARK

MANAGED_FILTER = json.dumps({"label": ["io.hostctl.managed=true"]}, separators=(",", ":"))
CONTAINERS = "/containers/json?all=1&filters=" + urllib.parse.quote(MANAGED_FILTER, safe="")
IMAGES = "/images/json"
NETWORKS = "/networks?filters=" + urllib.parse.quote(MANAGED_FILTER, safe="")
INFO = "/info"
VERSION = "/version"
SECTION = "api"
STANDARD_CLIENTS = ("docker", "/usr/bin/docker")
DEFAULT_SOCKET = "/var/run/docker.sock"  # the engine a client with no settings asks


class DockerApiError(ValueError):
    """The engine's answers were not what was asked for (cut short, or an error status)."""


def requests(paths: Sequence[str]) -> bytes:
    """GET requests for `paths`, pipelined; the last asks the engine to close, which ends
    dial-stdio once every answer is written."""
    out = []
    for i, path in enumerate(paths):
        close = "Connection: close\r\n" if i == len(paths) - 1 else ""
        out.append(f"GET {path} HTTP/1.1\r\nHost: docker\r\n{close}\r\n")
    return "".join(out).encode()


def api_lines(docker: str, paths: Sequence[str]) -> list[str]:
    """Shell lines that ask the engine `paths` in the background (into "$T/api", its exit
    status into "$T/api.rc"); run `answer_lines` after the script's `wait`.

    With the standard client (`docker`, `/usr/bin/docker`) configured for the default
    engine (no DOCKER_HOST, no DOCKER_CONTEXT, no current context in its config), curl asks
    that engine's socket directly when it is there: the same requests and the same raw
    answers (`--raw`: chunked bodies as the engine sent them) for ~4 ms of CPU instead of
    the docker client's ~20. Any other client is asked through dial-stdio, as configured."""
    fmt = requests(paths).decode().replace("%", "%%").replace("\r\n", "\\r\\n")
    dial = f"printf {shlex.quote(fmt)} | {shlex.quote(docker)} system dial-stdio"
    if docker in STANDARD_CLIENTS:
        urls = " ".join(shlex.quote(f"http://docker{p}") for p in paths)
        config = '"${DOCKER_CONFIG:-$HOME/.docker}/config.json"'
        dial = (f'if [ -z "${{DOCKER_HOST-}}${{DOCKER_CONTEXT-}}" ] && [ -S {DEFAULT_SOCKET} ] '
                "&& command -v curl >/dev/null 2>&1 "
                f"&& {{ [ ! -e {config} ] || ! grep -q '\"currentContext\"' {config}; }}; "
                f"then curl -s --raw -i --unix-socket {DEFAULT_SOCKET} {urls}; "
                f"else {dial}; fi")
    return [f'( {dial} >"$T/api" 2>/dev/null; echo $? >"$T/api.rc" ) &']


def answer_lines(fallback: Sequence[str]) -> list[str]:
    """The `@@api` section with the engine's answers, base64 on one line (JSON may hold any
    text; a line of it must not pass for a section mark); when dial-stdio gave nothing,
    the `fallback` lines instead (the docker commands, run then)."""
    return [
        'rc=; { read -r rc <"$T/api.rc"; } 2>/dev/null',
        'if [ "$rc" = 0 ] && [ -s "$T/api" ]; then',
        f"  echo '{MARK}{SECTION}'",
        '  base64 -w0 "$T/api"; echo',
        "else",
        *(f"  {line}" for line in fallback),
        "fi",
    ]


class _Answers(io.BytesIO):
    """The answers as http.client reads a socket's file: each answer closes its file when
    read to the end, which must not end the next one's."""

    def close(self) -> None:
        pass


class _Socket:
    def __init__(self, stream: _Answers):
        self.stream = stream

    def makefile(self, mode: str) -> _Answers:
        return self.stream


def parse_answers(encoded: str) -> list[Any]:
    """The JSON bodies of the answers in the `@@api` section's base64 text, in the order
    asked. Raises DockerApiError when one is cut short, is not 200 OK or is not JSON."""
    # start-up: http.client is needed only once a host's answer is read
    import http.client

    try:
        raw = base64_bytes(encoded)
    except ValueError as exc:
        raise DockerApiError(f"Docker's answer is not base64 ({exc})") from None
    stream = _Answers(raw)
    bodies: list[Any] = []
    while stream.tell() < len(raw):
        response = http.client.HTTPResponse(_Socket(stream))  # type: ignore[arg-type]
        try:
            response.begin()
            body = response.read()
        except (http.client.HTTPException, OSError, ValueError) as exc:
            raise DockerApiError(f"Docker's answer {len(bodies) + 1} was cut short "
                                 f"({type(exc).__name__})") from None
        if response.status != 200:
            raise DockerApiError(f"Docker answered {response.status} {response.reason}: "
                                 f"{body[:200].decode(errors='replace').strip()}")
        try:
            bodies.append(json.loads(body))
        except ValueError:
            raise DockerApiError(f"Docker's answer {len(bodies) + 1} is not JSON") from None
    return bodies


def section_answers(host: str, lines: list[str], asked: int) -> list[Any]:
    """The `@@api` section's answers, at least `asked` of them; raises DockerApiError
    naming `host` otherwise."""
    try:
        answers = parse_answers("".join(lines))
    except DockerApiError as exc:
        raise DockerApiError(f"{host}: {exc}") from None
    if len(answers) < asked:
        raise DockerApiError(f"{host}: Docker's answer was cut short "
                             f"({len(answers)} of {asked})")
    return answers


def base64_bytes(encoded: str) -> bytes:
    # start-up: base64 is small, but only a host's answer needs it
    import base64

    return base64.b64decode(encoded.strip(), validate=True)


def images(data: Any) -> dict[str, str]:
    """/images/json -> {`repo:tag` and `repo@digest`: image id}, as `docker image ls` names
    them (untagged images, `<none>`, left out)."""
    out: dict[str, str] = {}
    for image in _dicts(data):
        image_id = str(image.get("Id", ""))
        for ref in [*_list(image.get("RepoTags")), *_list(image.get("RepoDigests"))]:
            if isinstance(ref, str) and "<none>" not in ref:
                out[ref] = image_id
    return out


def _dicts(data: Any) -> list[dict[str, Any]]:
    """The objects of a JSON list (a host's answer of another shape reads as none)."""
    return [d for d in _list(data) if isinstance(d, dict)]


def _list(data: Any) -> list[Any]:
    return data if isinstance(data, list) else []


def container_name(container: dict[str, Any]) -> str:
    """The container's own name (the API's names start with `/`; a linked container's
    aliases hold another `/`)."""
    names = [n[1:] for n in _list(container.get("Names")) if isinstance(n, str)]
    own = [n for n in names if "/" not in n]
    return (own or names or [""])[0]


def labels(container: dict[str, Any]) -> dict[str, str]:
    found = container.get("Labels")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def containers(data: Any) -> list[dict[str, Any]]:
    return _dicts(data)


def networks(data: Any) -> frozenset[str]:
    return frozenset(str(n.get("Name")) for n in _dicts(data) if n.get("Name"))


def runtimes(data: Any) -> frozenset[str] | None:
    found = data.get("Runtimes") if isinstance(data, dict) else None
    return frozenset(found) if isinstance(found, dict) else None
