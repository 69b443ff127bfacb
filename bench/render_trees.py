"""Render the worked example and N generated sites into one folder, to compare what two
versions of hostctl write, byte for byte (a refactor must change nothing):

    python bench/render_trees.py --make-sites SITES [--sites 1000]   # once
    python bench/render_trees.py --sites-from SITES OUT               # with each version
    diff -r OUT_BEFORE OUT_AFTER

The sites come from the property test's generator (tests/rigs/site_strategies.py), written out
once so both versions read the same files. Each site that validates gets `render` and
`k8s render` (secrets redacted) under OUT/<site>/; one that does not gets the exit code and
problem lines in problems.txt there."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]


def _main_group() -> Any:
    try:  # the stage packages (issue 11)
        from hostctl.cli.root import main
    except ImportError:  # before them: hostctl/cli.py
        from hostctl.cli import main  # type: ignore[attr-defined,no-redef]
    return main


def render_one(site_dir: Path, inventory: str, out: Path) -> None:
    """validate, render and k8s render of the site in `site_dir` (copied, so nothing is
    written beside the inputs), into `out`."""
    runner, main = CliRunner(), _main_group()
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "site"
        shutil.copytree(site_dir, root, symlinks=True)
        os.chdir(root)
        try:
            checked = runner.invoke(main, ["validate", "-i", inventory])
            out.mkdir(parents=True, exist_ok=True)
            if checked.exit_code != 0:
                (out / "problems.txt").write_text(f"exit {checked.exit_code}\n{checked.output}")
                return
            for args in (["render", "-i", inventory, "-o", "render"],
                         ["k8s", "render", "-i", inventory, "-o", "k8s"]):
                res = runner.invoke(main, args)
                (out / f"{args[0]}-{args[1]}.exit").write_text(f"{res.exit_code}\n")
            for name in ("render", "k8s"):
                if (root / name).is_dir():
                    shutil.copytree(root / name, out / name, symlinks=True)
        finally:
            os.chdir(cwd)


def make_sites(folder: Path, count: int) -> None:
    from hypothesis import HealthCheck, given, settings

    sys.path.insert(0, str(REPO))
    from tests.rigs import site_strategies as gen

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copytree(REPO / "inventories", folder / "example")

    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(gen.sites())
    def one(site: gen.SiteFiles) -> None:
        digest = hashlib.sha256(repr(sorted(site.files.items())).encode()).hexdigest()[:16]
        root = folder / digest
        if root.exists():  # drawn again
            return
        for name, text in site.files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text, encoding="utf-8", newline="")

    one()
    print(f"{sum(1 for _ in folder.iterdir()) - 1} distinct generated sites and the worked "
          f"example in {folder}/")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--make-sites", type=Path, metavar="SITES")
    parser.add_argument("--sites-from", type=Path, metavar="SITES")
    parser.add_argument("--sites", type=int, default=1000)
    args = parser.parse_args()
    if args.make_sites:
        make_sites(args.make_sites.resolve(), args.sites)
        return
    if not (args.sites_from and args.out):
        parser.error("give --make-sites SITES, or --sites-from SITES OUT")
    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    sites = sorted(p for p in args.sites_from.resolve().iterdir() if p.is_dir())
    for site in sites:
        render_one(site, "site.yml", out / site.name)
    rendered = sum(1 for p in out.iterdir() if (p / "render").is_dir())
    print(f"{len(sites)} sites into {out}/ ({rendered} rendered, the rest refused by validate)")


if __name__ == "__main__":
    main()
