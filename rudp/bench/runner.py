"""Running one variant of a measure on one loop: every implementation, interleaved.

Each implementation gets a *team*: a server worker and one or more client
workers.  All teams are up at once (idle workers cost nothing), and run ``i``
of every implementation happens before run ``i + 1`` of any, in an order that
rotates from run to run, so a burst of noise on the machine hits all of them
rather than one.  A failed run is recorded in its cell and its team replaced.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .common import Cell, progress
from .procs import Worker, WorkerError, stop_all

SPAWN_TIMEOUT = 60.0


@dataclass
class Team:
    """The processes of one implementation: a server and its clients."""

    impl: str
    server: Worker
    clients: list[Worker]
    port: int = 0

    @property
    def workers(self) -> list[Worker]:
        return [self.server, *self.clients]


@dataclass
class Plan:
    """What to run: one measure's variant on one loop, for these implementations."""

    measure: str
    variant: str
    loop: str
    impls: Sequence[str]
    params: dict[str, Any] = field(default_factory=dict)
    client_workers: int = 1
    #: Pin both sides to this CPU (latency measures).
    cpu: int | None = None
    #: New processes for every run (the memory measure needs a clean server).
    fresh: bool = False
    #: The rudp.bench module whose ROLES the workers run (default: ``measure``).
    module: str | None = None


#: One run: given the team, return the run's metrics (raise WorkerError on failure).
RunOnce = Callable[[Team, float], dict[str, float]]
#: Renders a run's metrics for the progress line.
Describe = Callable[[dict[str, float]], str]


def run_plan(
    args: argparse.Namespace, plan: Plan, run_once: RunOnce, timeout: float, describe: Describe
) -> list[Cell]:
    cells = {
        impl: Cell(plan.measure, plan.variant, plan.loop, impl, dict(plan.params))
        for impl in plan.impls
    }
    teams: dict[str, Team] = {}
    try:
        if not plan.fresh:
            teams.update(_start_teams(args, plan, plan.impls, cells))
        for index in range(args.runs):
            shift = index % len(plan.impls)
            for impl in [*plan.impls[shift:], *plan.impls[:shift]]:
                if impl not in teams:
                    teams.update(_start_teams(args, plan, [impl], cells))
                    if impl not in teams:
                        continue
                label = f"{plan.measure} {plan.variant} {plan.loop} {impl} {index + 1}/{args.runs}"
                team = teams[impl]
                try:
                    metrics = run_once(team, timeout)
                except WorkerError as exc:
                    cells[impl].errors.append(str(exc))
                    progress(args, f"{label}: FAILED {exc}")
                    stop_all(teams.pop(impl).workers)
                    continue
                cells[impl].runs.append(metrics)
                progress(args, f"{label}: {describe(metrics)}")
                if plan.fresh:
                    stop_all(teams.pop(impl).workers)
    finally:
        for team in teams.values():
            stop_all(team.workers)
    return [cells[impl] for impl in plan.impls]


def _start_teams(
    args: argparse.Namespace, plan: Plan, impls: Sequence[str], cells: dict[str, Cell]
) -> dict[str, Team]:
    """Start the teams of ``impls`` in parallel; an implementation whose workers
    do not come up gets an error in its cell and no team."""
    pending: dict[str, Team] = {}
    for impl in impls:
        base = {
            "measure": plan.module or plan.measure,
            "impl": impl,
            "loop": plan.loop,
            "params": plan.params,
            "cpu": plan.cpu,
        }
        server = Worker({**base, "role": "server"}, f"{impl} server")
        clients = [
            Worker({**base, "role": "client", "index": number}, f"{impl} client {number}")
            for number in range(plan.client_workers)
        ]
        pending[impl] = Team(impl, server, clients)
    started: dict[str, Team] = {}
    for impl, team in pending.items():
        try:
            for worker in team.workers:
                worker.wait_ready(SPAWN_TIMEOUT)
        except WorkerError as exc:
            cells[impl].errors.append(str(exc))
            progress(args, f"{plan.measure} {plan.variant} {plan.loop} {impl}: FAILED {exc}")
            stop_all(team.workers)
            continue
        assert team.server.ready is not None
        team.port = int(team.server.ready.get("port", 0))
        started[impl] = team
    return started
