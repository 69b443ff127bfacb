"""Bad input is a product surface: for each class of issue 10 #13-#17 and #20, the input, the
exact lines `hostctl validate` prints and its exit code, and for the render and secret cases
what `hostctl render` does with the same input.

Each command runs as a subprocess with a timeout, so an input that makes hostctl hang (a FIFO,
an alias bomb) fails its row instead of blocking the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hostctl.spec.secrets import ENV_FILE_LINE_MAX, Secret, parse_env_file, redact
from tests.rigs.site_factory import BASE_INVENTORY, BASE_SECRETS, SERVICE

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 60  # seconds: far above any of these runs, far below "hangs"
FOOTER_1 = "1 problem found; nothing was changed."

# Nine levels of ten aliases each: 10^9 values if expanded (the "billion laughs").
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))


@dataclass
class Case:
    specs: dict[str, str | bytes]
    stderr: list[str]  # exact lines of `hostctl validate`
    code: int = 2
    inventory: str = BASE_INVENTORY
    secrets: str | bytes = BASE_SECRETS
    env: dict[str, str | bytes] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    # `hostctl render -o OUT` on the same input: (exit code, exact stderr lines); None: the
    # same as validate
    render: tuple[int, list[str]] | None = None


def _fifo(name: str) -> Callable[[Path], None]:
    return lambda root: os.mkfifo(root / name)


def _mkdir(name: str) -> Callable[[Path], None]:
    return lambda root: (root / name).mkdir()


def _spec(text: str) -> str:
    return textwrap.dedent(text)


WITH_SECRET = SERVICE + "secrets: [DB_PASSWORD]\n"
ENV_PREFIX = BASE_INVENTORY.replace("{env_file: secrets.env}",
                                    "{env_file: secrets.env, env_prefix: HS_}")

CASES = {
    # -- 13: internal errors -----------------------------------------------------------------
    "alias-loop": Case(
        {"a.yml": SERVICE, "b.yml": "&a [*a]\n"},
        ["error: specs/b.yml:1: 0: invalid YAML: an alias refers to a value that contains it "
         "(a loop); use the alias outside the anchored value", FOOTER_1]),
    "merge-loop": Case(
        {"a.yml": SERVICE + "labels: &l {<<: *l}\n"},
        ["error: specs/a.yml:10: labels: invalid YAML: an alias refers to a value that "
         "contains it (a loop); use the alias outside the anchored value", FOOTER_1]),
    "too-deep": Case(
        {"a.yml": SERVICE + "env: " + "[" * 100 + "]" * 100 + "\n"},
        ["error: specs/a.yml:10: env/0/0/...: nested more than 64 levels deep; no hostctl "
         "setting is", FOOTER_1]),
    "int-over-4300-digits": Case(
        {"a.yml": SERVICE + "instances: " + "9" * 5000 + "\n"},
        ["error: specs/a.yml:10: instances: this number is too long to read; write a shorter "
         "one, or quote it if it is text", FOOTER_1]),
    "huge-hex-int": Case(
        {"a.yml": SERVICE + "instances: 0x" + "f" * 5000 + "\n"},
        ["error: specs/a.yml:10: instances: must be at most 64, got a number of about 6021 "
         "digits", FOOTER_1]),
    "int-past-2^53": Case(
        {"a.yml": SERVICE + "route: {path: /api, rate_limit: {second: 100000000000000000000}}\n"},
        ["error: specs/a.yml:10: route/rate_limit/second: must be at most 9007199254740991, got "
         "100000000000000000000", FOOTER_1]),
    "cpus-inf": Case(
        {"a.yml": SERVICE + "resources: {cpus: .inf, memory: 1Gi}\n"},
        ["error: specs/a.yml:10: resources/cpus: expected a finite number, got .inf",
         FOOTER_1]),
    "cpus-nan": Case(
        {"a.yml": SERVICE + "resources: {cpus: .NaN, memory: 1Gi}\n"},
        ["error: specs/a.yml:10: resources/cpus: expected a finite number, got .nan",
         FOOTER_1]),
    "env-inf": Case(
        {"a.yml": SERVICE + "env: {LIMIT: -.inf}\n"},
        ["error: specs/a.yml:10: env/LIMIT: got a number (-.inf), which YAML reads as a number "
         "and not as the text written; quote it", FOOTER_1]),
    "esc-in-spec-file-name": Case(
        {"a.yml": SERVICE, "b\x1b[31m.yml": SERVICE.replace("name: api", "name: web")
         .replace("18080", "18090")},
        ["error: site.yml:8: specs/0: 'specs/b\\x1b[31m.yml': a systemd unit cannot name this "
         "file (control character '\\x1b' at position 8 cannot appear in a unit setting); "
         "rename it", FOOTER_1]),
    "nul-in-env-file-name": Case(
        {"a.yml": SERVICE},
        ["error: site.yml:9: secrets/env_file: secrets file 's\\x00.env' has a NUL character "
         "in its name, which no file name can hold", FOOTER_1],
        inventory=BASE_INVENTORY.replace("env_file: secrets.env", 'env_file: "s\\0.env"')),
    "1e308-price": Case(
        {"a.yml": SERVICE},
        ["error: site.yml:10: metrics/prices/cpu_hour: must be at most 9007199254740991, got "
         "1e+308", FOOTER_1],
        inventory=BASE_INVENTORY + "metrics: {prices: {currency: EUR, cpu_hour: 1.0e+308}}\n"),
    "nul-in-ssh-key-path": Case(
        {"a.yml": SERVICE},
        ["error: site.yml:2: ssh/key: has a NUL character, which no file name can hold; remove "
         "it", FOOTER_1],
        inventory=BASE_INVENTORY.replace("site: t\n", 'site: t\nssh: {key: "id\\0"}\n')),
    "ssh-persist-over-an-hour": Case(
        {"a.yml": SERVICE},
        ["error: site.yml:2: ssh/persist: must be at most 1h, got '2h'", FOOTER_1],
        inventory=BASE_INVENTORY.replace("site: t\n", "site: t\nssh: {persist: 2h}\n")),
    "ssh-persist-under-a-second": Case(
        {"a.yml": SERVICE},
        ["error: site.yml:2: ssh/persist: must be 0 or at least 1s, got 500ms", FOOTER_1],
        inventory=BASE_INVENTORY.replace("site: t\n", "site: t\nssh: {persist: 500ms}\n")),
    "100000-env-keys": Case(
        {"a.yml": SERVICE + "env:\n" + "".join(f"  K{i}: v{i}\n" for i in range(100_000))},
        ["error: specs/a.yml:10: env: 100000 variables take 1977780 bytes of the unit's docker "
         "run line (--env NAME=VALUE each); systemd reads unit file lines of at most 1048576 "
         "bytes, so keep env under 786432 bytes and put bulky settings in a file the container "
         "reads", FOOTER_1]),
    # -- 14: hangs and memory ----------------------------------------------------------------
    "fifo-spec": Case(
        {"a.yml": SERVICE},
        ["error: site.yml:8: specs/1: 'specs/f.yml' is a named pipe (FIFO), not a regular "
         "file; name a YAML file", FOOTER_1],
        inventory=BASE_INVENTORY.replace("[specs/*.yml]", "[specs/*.yml, specs/f.yml]"),
        setup=_fifo("specs/f.yml")),
    "fifo-env-file": Case(
        {"a.yml": SERVICE},
        ["error: site.yml:9: secrets/env_file: secrets file 'secrets.fifo' is a named pipe "
         "(FIFO), not a regular file", FOOTER_1],
        inventory=BASE_INVENTORY.replace("env_file: secrets.env", "env_file: secrets.fifo"),
        setup=_fifo("secrets.fifo")),
    "fifo-inventory": Case(
        {"a.yml": SERVICE}, ["error: in.fifo: inventory is a named pipe (FIFO), not a regular "
                             "file", FOOTER_1], setup=_fifo("in.fifo")),
    "alias-bomb": Case(
        {"a.yml": SERVICE, "b.yml": ALIAS_BOMB},
        ["error: specs/b.yml:1: e/7/8/9/0/2: aliases expand to more than 100000 values in this "
         "file; write the values out, or reuse fewer of them", FOOTER_1]),
    "spec-over-8-MiB": Case(
        {"a.yml": SERVICE, "b.yml": "# padding\n" * (1 << 20)},
        ["error: specs/b.yml: spec file is larger than 8 MiB, more than any hostctl input "
         "needs", FOOTER_1]),
    # -- 16, 17: secrets ---------------------------------------------------------------------
    "secret-not-utf8": Case(
        {"a.yml": WITH_SECRET},
        ["error: secrets.env:1: DB_PASSWORD: the value is not UTF-8 text; save the file as "
         "UTF-8", FOOTER_1], secrets=b"DB_PASSWORD=s3cr3t\xff-value\n"),
    "secret-from-environment-not-utf8": Case(
        {"a.yml": WITH_SECRET},
        ["error: environment: HS_DB_PASSWORD: the value is not UTF-8 text; Docker env files "
         "hold only UTF-8", FOOTER_1],
        inventory=ENV_PREFIX, env={"HS_DB_PASSWORD": b"s3cr3t\xff-value"}),
    "secret-from-environment-newline": Case(
        {"a.yml": WITH_SECRET},
        ["error: environment: HS_DB_PASSWORD: the value contains a line break, which Docker "
         "env files cannot carry; store it base64-encoded", FOOTER_1],
        inventory=ENV_PREFIX, env={"HS_DB_PASSWORD": "s3cr3t\n-value"}),
    "secret-with-nul": Case(
        {"a.yml": WITH_SECRET},
        ["error: secrets.env:1: DB_PASSWORD: the value contains a NUL character, which no "
         "environment variable can hold", FOOTER_1], secrets=b"DB_PASSWORD=s3cr3t\0-value\n"),
    "secret-with-lone-cr": Case(
        {"a.yml": WITH_SECRET},
        ["error: secrets.env:1: DB_PASSWORD: the value contains a line break, which Docker env "
         "files cannot carry; store it base64-encoded", FOOTER_1],
        secrets=b"DB_PASSWORD=s3cr3t\rAPI_TOKEN=-value\n"),
    "u2028-does-not-split-a-secret": Case(
        {"a.yml": SERVICE + "secrets: [API_TOKEN]\n"},
        ["error: specs/a.yml:10: secrets/0: secret 'API_TOKEN' is not in secrets.env; add it "
         "there (never in the spec)", FOOTER_1],
        secrets="DB_PASSWORD=s3cr3t\u2028API_TOKEN=-value\n".encode()),
    "secret-line-over-64-KiB": Case(
        {"a.yml": WITH_SECRET},
        ["error: secrets.env:1: DB_PASSWORD: DB_PASSWORD=VALUE is 65536 bytes; Docker reads "
         "env-file lines of at most 65535 bytes: keep large secrets in a file mounted from a "
         "volume", FOOTER_1], secrets="DB_PASSWORD=" + "s" * (65536 - 12) + "\n"),
    # -- 20: messages name the file, line and field ------------------------------------------
    "spec-not-utf8": Case(
        {"a.yml": SERVICE, "b.yml": b"kind: service\nname: w\xe9b\n"},
        ["error: specs/b.yml:2: spec file is not UTF-8 text: byte 0xe9 at column 8; save it as "
         "UTF-8", FOOTER_1]),
    "control-character-in-yaml": Case(
        {"a.yml": SERVICE.replace("name: api", "name: 'api\x07'")},
        ["error: specs/a.yml:2: invalid YAML: control character U+0007 at column 11; remove it "
         "(inside double quotes YAML reads the escape \\x07 instead)", FOOTER_1]),
    "missing-secrets-file": Case(
        {"a.yml": SERVICE},
        ["error: site.yml:9: secrets/env_file: secrets file 'nope.env' not found; create it "
         "(NAME=VALUE lines, mode 0600) or fix the path (it is relative to the inventory)",
         FOOTER_1],
        inventory=BASE_INVENTORY.replace("env_file: secrets.env", "env_file: nope.env")),
    "spec-is-a-directory": Case(
        {"a.yml": SERVICE},
        ["error: site.yml:8: specs/1: 'more' is a directory; name the spec files in it, such "
         "as 'more/*.yml'", FOOTER_1],
        inventory=BASE_INVENTORY.replace("[specs/*.yml]", "[specs/*.yml, more]"),
        setup=_mkdir("more")),
    "empty-spec": Case(
        {"a.yml": SERVICE, "b.yml": ""},
        ["error: specs/b.yml:1: no workload in this file; add a spec or remove the file",
         FOOTER_1]),
    "newline-in-file-name": Case(
        {"a.yml": SERVICE, "b\nc.yml": "kind: service\n"},
        ["error: specs/b\\nc.yml:1: image: missing required key 'image'",
         "error: specs/b\\nc.yml:1: name: missing required key 'name'",
         "error: specs/b\\nc.yml:1: project: missing required key 'project'",
         "3 problems found; nothing was changed."]),
    "escape-in-value": Case(
        {"a.yml": SERVICE.replace("name: api", 'name: "\\e[2J"')},
        ["error: specs/a.yml:2: name: '\\x1b[2J' is not valid: use lowercase letters, digits and "
         "'-', starting and ending with a letter or digit", FOOTER_1]),
}


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)


def _site(root: Path, case: Case) -> str:
    for name, text in case.specs.items():
        _write(root / "specs" / name, text)
    _write(root / "secrets.env", case.secrets)
    _write(root / "site.yml", case.inventory)
    if case.setup:
        case.setup(root)
    return "in.fifo" if (root / "in.fifo").exists() else "site.yml"


def hostctl(root: Path, *args: str, env: dict[str, str | bytes] | None = None
            ) -> subprocess.CompletedProcess[bytes]:
    environ = {k: v for k, v in os.environb.items() if not k.startswith(b"HS_")}
    environ.update({b"PYTHONPATH": str(ROOT).encode(), b"NO_COLOR": b"1",
                    b"HOME": str(root).encode()})
    for key, value in (env or {}).items():
        environ[key.encode()] = value.encode() if isinstance(value, str) else value
    return subprocess.run([sys.executable, "-m", "hostctl", *args], cwd=root, env=environ,
                          capture_output=True, timeout=TIMEOUT, check=False)


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8", errors="backslashreplace").splitlines()


@pytest.mark.parametrize("name", list(CASES))
def test_validate_and_render_refuse_bad_input(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    inventory = _site(tmp_path, case)
    res = hostctl(tmp_path, "validate", "-i", inventory, env=case.env)
    assert (res.returncode, _lines(res.stderr)) == (case.code, case.stderr)
    assert res.stdout == b""
    code, stderr = case.render or (case.code, case.stderr)
    res = hostctl(tmp_path, "render", "-i", inventory, "-o", "out", env=case.env)
    assert (res.returncode, _lines(res.stderr)) == (code, stderr)
    assert not (tmp_path / "out").exists()
    assert b"s3cr3t" not in res.stdout + res.stderr


RENDER_FOLDER_CASES = {
    "specs-folder": ("specs", 1, ["error: specs is not empty and was not written by `hostctl "
                                  "render`; choose another folder (or empty this one)"]),
    "current-folder": (".", 1, ["error: .: hostctl render replaces its output folder whole, "
                                "and this one holds the current folder; choose a folder such "
                                "as ./out"]),
    "parent-folder": ("..", 1, ["error: ..: hostctl render replaces its output folder whole, "
                                "and this one holds the current folder; choose a folder such "
                                "as ./out"]),
    "a-file": ("site.yml", 2, ["Usage: python -m hostctl render [OPTIONS]",
                               "Try 'python -m hostctl render --help' for help.", "",
                               "Error: Invalid value for '-o' / '--out': Directory 'site.yml' "
                               "is a file."]),
}


@pytest.mark.parametrize("name", list(RENDER_FOLDER_CASES))
def test_render_refuses_a_folder_it_did_not_write(tmp_path: Path, name: str) -> None:
    out, code, stderr = RENDER_FOLDER_CASES[name]
    root = tmp_path / "site"
    _site(root, Case({"a.yml": SERVICE}, []))
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    res = hostctl(root, "render", "-i", "site.yml", "-o", out)
    assert (res.returncode, _lines(res.stderr)) == (code, stderr)
    # Nothing deleted, nothing left behind (no .hostctl-old-* or .hostctl-render-*).
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def test_render_replaces_its_own_folder_and_an_empty_one(tmp_path: Path) -> None:
    _site(tmp_path, Case({"a.yml": SERVICE}, []))
    (tmp_path / "out").mkdir()
    for _ in range(2):  # empty, then written by render
        res = hostctl(tmp_path, "render", "-i", "site.yml", "-o", "out")
        assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["app-1", "hostctl-render.txt"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    # ... and k8s render, by the same rule, refuses render's folder and render refuses its
    res = hostctl(tmp_path, "k8s", "render", "-i", "site.yml", "-o", "out")
    assert (res.returncode, _lines(res.stderr)) == (1, [
        "error: out is not empty and was not written by `hostctl k8s render`; choose another "
        "folder (or empty this one)"])
    assert hostctl(tmp_path, "k8s", "render", "-i", "site.yml", "-o", "k8s").returncode == 0
    res = hostctl(tmp_path, "render", "-i", "site.yml", "-o", "k8s")
    assert (res.returncode, _lines(res.stderr)) == (1, [
        "error: k8s is not empty and was not written by `hostctl render`; choose another "
        "folder (or empty this one)"])


def test_env_file_lines_end_at_newline_only() -> None:
    values, problems = parse_env_file(
        "\ufeffA=1\u2028B=2\x0bC\x1c3\r\nD=4\n\n# E=5\nexport F='six'\n".encode(), "s.env")
    assert (values, problems) == (
        {"A": "1\u2028B=2\x0bC\x1c3", "D": "4", "F": "six"}, [])


def test_env_file_line_limit_is_dockers() -> None:
    name = "K"
    ok = f"{name}={'v' * (ENV_FILE_LINE_MAX - 2)}\n".encode()
    assert parse_env_file(ok, "s.env")[1] == []
    over = f"{name}={'v' * (ENV_FILE_LINE_MAX - 1)}\n".encode()
    assert [str(p) for p in parse_env_file(over, "s.env")[1]] == [
        "s.env:1: K: K=VALUE is 65536 bytes; Docker reads env-file lines of at most 65535 "
        "bytes: keep large secrets in a file mounted from a volume"]


def test_internal_error_never_shows_data_and_its_trace_hides_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import hostctl.spec.loader
    from hostctl.cli.root import main

    secret = Secret("DB_PASSWORD", "hunter2-value")

    def boom(*_: object, **__: object) -> None:
        raise ValueError(f"bad line DB_PASSWORD={secret.reveal()}")

    monkeypatch.setattr(hostctl.spec.loader, "load_site", boom)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    result = CliRunner().invoke(main, ["validate", "-i", "site.yml"])
    assert result.exit_code == 70
    assert "hunter2" not in result.stderr
    trace = Path(result.stderr.split("the full trace is in ")[1].split(" ")[0])
    text = trace.read_text()
    assert "ValueError: bad line DB_PASSWORD=<secret DB_PASSWORD>" in text
    assert "hunter2" not in text
    assert oct(trace.stat().st_mode & 0o777) == "0o600"
    assert redact("x hunter2-value y") == "x <secret DB_PASSWORD> y"


def test_merge_keys_let_written_keys_win_with_their_lines() -> None:
    from hostctl.spec.yamlsource import load_documents

    doc = load_documents("d: &d {x: 1, y: {z: 2}}\ne: &e {x: 3, w: 4}\nb:\n  x: 5\n"
                         "  <<: [*d, *e]\n", "f.yml")[0]
    assert doc.data["b"] == {"x": 5, "y": {"z": 2}, "w": 4}
    assert [doc.line_of(("b", k)) for k in ("x", "y", "w")] == [4, 1, 2]
