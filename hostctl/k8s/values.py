"""Spec values in Kubernetes' spelling: CPU and memory quantities, whole seconds, and
command words protected from Kubernetes' `$(VAR)` expansion.

Where the conversion loses precision, the report says so (`seconds`), because a setting that
silently changes meaning is worse than one that is refused.
"""

from __future__ import annotations

from hostctl.k8s import checks as kc
from hostctl.k8s.render_context import RenderContext
from hostctl.spec import model as m


def cpu_quantity(cpus: float) -> str:
    milli = max(1, round(cpus * 1000))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def memory_quantity(size: int) -> str:
    for suffix, unit in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def escape_expansion(word: str) -> str:
    """Kubernetes expands `$(VAR)` in command and args and turns `$$` into `$`; Docker does
    neither. Doubling every `$` makes Kubernetes pass the word through unchanged."""
    return word.replace("$", "$$")


def seconds(ctx: RenderContext, w: m.Workload, path: str, value: float,
            minimum: int = 1) -> int:
    """`value` in whole seconds, reported at `path` when that is not what the spec says."""
    whole = kc.whole_seconds(value, minimum)
    if abs(whole - value) > 1e-9:
        ctx.note(w, path, f"{value:g}s becomes {whole}s: Kubernetes counts whole seconds")
    return whole
