"""A deterministic network simulator that runs the real consensus cores.

One seed drives everything (after TigerBeetle's VOPR): the fault plan is drawn from it
first and printed, then a safety phase runs with drops, delays, duplicates, reordering,
partitions, crashes and byzantine validators; at ``heal_at`` the network becomes
reliable, crashed nodes restart from what they persisted, and every honest node must
decide every remaining height within a bound (the liveness phase). Time is virtual;
signatures are real.

- ``events``: what a run schedules (typed events) and the queue in virtual time;
- ``network``: delivery, delays, partitions, drops, duplicates, reordering;
- ``faults``: the fault plan drawn from the seed, and the byzantine strategies;
- ``checks``: agreement, validity, integrity, no honest double-signing, termination;
- ``world``: the chain id, the members' seeded keys, the blocks proposers make;
- ``run``: the honest nodes' hosts and the run itself; ``cli``: ``scripts/simulate.py``.
"""

from node.consensus.simulator.checks import Checks
from node.consensus.simulator.cli import main
from node.consensus.simulator.faults import ALL_FAULTS, STRATEGIES, Adversary, FaultPlan, draw_plan
from node.consensus.simulator.run import (
    RunResult,
    SimConfig,
    SimNode,
    Simulation,
    SimulationError,
    run_seed,
)
from node.consensus.simulator.world import CHAIN_ID, member_ids, member_key

__all__ = [
    "ALL_FAULTS",
    "CHAIN_ID",
    "STRATEGIES",
    "Adversary",
    "Checks",
    "FaultPlan",
    "RunResult",
    "SimConfig",
    "SimNode",
    "Simulation",
    "SimulationError",
    "draw_plan",
    "main",
    "member_ids",
    "member_key",
    "run_seed",
]
