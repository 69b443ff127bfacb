"""Issue 11's budget: validate + render 1,000 services over 100 hosts (< 1 s; issue 2 set 2 s), and
`hostctl --help` start-up (< 0.3 s). Run: python bench/validate_render.py"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_site(root: Path, hosts: int = 100, services: int = 1000) -> Path:
    (root / "specs").mkdir()
    lines = ["site: bench", "ssh: {user: root}", "hosts:"]
    for h in range(hosts):
        lines.append(f"  h{h}: {{address: 10.1.{h // 250}.{h % 250 + 1}, "
                     f"labels: {{rack: r{h % 10}}}}}")
    lines += ["profiles:", "  small: {cpus: 0.5, memory: 256Mi}", "specs: [specs/*.yml]",
              "secrets: {env_file: secrets.env}"]
    (root / "site.yml").write_text("\n".join(lines) + "\n")
    (root / "secrets.env").write_text("DB_PASSWORD=x\n")
    for f in range(services // 10):
        docs = []
        for i in range(10):
            n = f * 10 + i
            docs.append(
                f"kind: service\nname: svc-{n}\nproject: p{n % 7}\n"
                f"image: registry.example.org/p/svc:{n}\n"
                f"args: [--id, '{n}', '--flag=%x $HOME']\nenv: {{MODE: prod, N: {n}}}\n"
                "secrets: [DB_PASSWORD]\n"
                f"ports: {{http: {{container: 8080, host: {10000 + n}}}}}\n"
                "resources: small\n"
                "health: {http: {path: /health, port: http}, interval: 5s}\n"
                f"placement: {{hosts: [h{n % 100}]}}\n"
                "route: {path: /svc-" + str(n) + "}\n")
        (root / "specs" / f"s{f}.yml").write_text("---\n".join(docs))
    return root / "site.yml"


def main() -> None:
    from hostctl.render.site import render_site
    from hostctl.validate import load_site

    with tempfile.TemporaryDirectory() as tmp:
        inv = make_site(Path(tmp))
        runs, cpu = [], []
        for _ in range(5):
            t0, c0 = time.perf_counter(), time.process_time()
            site = load_site(str(inv))
            files = render_site(site)
            runs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)  # on a shared machine, less noisy than wall
        count = sum(len(v) for v in files.values())
        print(f"validate+render 1000 services / 100 hosts ({count} files): "
              f"median {statistics.median(runs):.2f}s, best {min(runs):.2f}s, "
              f"CPU median {statistics.median(cpu):.2f}s (target < 1 s)")
    helps = []
    for _ in range(7):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hostctl", "--help"], check=True,
                       capture_output=True)
        helps.append(time.perf_counter() - t0)
    print(f"hostctl --help: median {statistics.median(helps):.3f}s, best {min(helps):.3f}s "
          "(target < 0.3 s)")


if __name__ == "__main__":
    main()
