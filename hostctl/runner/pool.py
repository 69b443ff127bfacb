"""Connect to many hosts at once; one bad host does not stop the others."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import TypeVar

from hostctl.runner.base import Runner, RunnerError

T = TypeVar("T")

DEFAULT_WORKERS = 16


@contextmanager
def open_runners(
    hosts: Iterable[str],
    factory: Callable[[str], Runner],
    max_workers: int = DEFAULT_WORKERS,
) -> Iterator[dict[str, Runner | RunnerError]]:
    """Build and connect a runner per host in parallel; close them all on exit.

    Yields `{host: runner or the RunnerError that host failed with}` in the order given.
    Anything other than a RunnerError is a bug: the runners already opened are closed and
    it propagates.
    """
    outcomes = _each(list(dict.fromkeys(hosts)), _connected(factory), max_workers)
    opened: dict[str, Runner | RunnerError] = {}
    bugs: list[BaseException] = []
    for name, outcome in outcomes.items():
        if isinstance(outcome, RunnerError) or not isinstance(outcome, BaseException):
            opened[name] = outcome
        else:
            bugs.append(outcome)
    try:
        if bugs:
            raise bugs[0]
        yield opened
    finally:
        _close_all(r for r in opened.values() if not isinstance(r, RunnerError))


def run_parallel(
    runners: Mapping[str, Runner | RunnerError],
    fn: Callable[[Runner], T],
    max_workers: int = DEFAULT_WORKERS,
) -> dict[str, T | Exception]:
    """Call `fn(runner)` for every host in parallel: `{host: its return value or exception}`.

    Hosts that failed to connect keep their RunnerError and are not called.
    """
    live = {name: r for name, r in runners.items() if not isinstance(r, RunnerError)}
    done = _each(list(live), lambda name: fn(live[name]), max_workers)
    results: dict[str, T | Exception] = {}
    for name, runner in runners.items():
        outcome = runner if isinstance(runner, RunnerError) else done[name]
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome  # KeyboardInterrupt and friends are not a host's result
        results[name] = outcome
    return results


def _connected(factory: Callable[[str], Runner]) -> Callable[[str], Runner]:
    def open_one(name: str) -> Runner:
        runner = factory(name)
        try:
            runner.connect()
        except BaseException:
            runner.close()
            raise
        return runner

    return open_one


def _each(
    names: list[str], fn: Callable[[str], T], max_workers: int
) -> dict[str, T | BaseException]:
    """`fn(name)` for each name on a thread pool; outcomes (value or exception) by name."""
    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(names)))) as pool:
        futures = {name: pool.submit(fn, name) for name in names}
    outcomes: dict[str, T | BaseException] = {}
    for name, future in futures.items():
        exc = future.exception()
        outcomes[name] = exc if exc is not None else future.result()
    return outcomes


def _close_all(runners: Iterable[Runner]) -> None:
    for runner in runners:
        # One runner failing to close must not leave the others open.
        with suppress(Exception):
            runner.close()
