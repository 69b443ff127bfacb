"""The inventory's `jobs:` section: how the hosts' run queues keep their records, typed.

`docs/inventory.yml` documents every key and is validated by the tests. A site without the
section gets the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hostctl.spec.schema import Int, Record, Section

DEFAULT_KEEP_RUNS = 500
MAX_KEEP_RUNS = 100_000


@dataclass(frozen=True)
class JobsConfig:
    # Ended runs each host keeps per job (their records and metric points); the queue's
    # pass removes older ones. Artifacts volumes are never touched.
    keep_runs: int = DEFAULT_KEEP_RUNS
    file: str = ""
    lines: dict[str, int] = field(default_factory=dict)


_SECTION: Record[JobsConfig] = Record(JobsConfig, {
    "keep_runs": Int(minimum=1, maximum=MAX_KEEP_RUNS),
})

# The `jobs:` key of an inventory: defaults apply when it is missing or empty.
JOBS = Section(lambda: _SECTION, empty_is_off=False)
