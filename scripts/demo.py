"""``python scripts/demo.py``: five customs administrations on real ``customs-node``
processes, one consignment's whole journey, a revocation caught at the border, forgeries
refused, a validator crash survived, and a verdict given offline (docs/demo.md).

The demo checks itself: exit 0 only when every step's outcome was the expected one,
otherwise a message naming the step and exit 1. Whatever happens (a failure, Ctrl-C,
SIGTERM) every process it started is killed before it exits, unless ``--keep`` asked
for the network to stay up after a successful run.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
for _path in (str(REPO), str(SCRIPTS)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from demo_customs import Customs  # noqa: E402
from demo_narrate import Narrator, StepFailed  # noqa: E402
from demo_network import DemoNetwork, NetworkError, stop_saved  # noqa: E402
from demo_scenario import STEPS, Scenario  # noqa: E402

BIN = Path(sys.executable).parent


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python scripts/demo.py",
        description="Run the Customs Ledger demo on a local five-node network.",
    )
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="keep the network here")
    parser.add_argument("--base-port", type=int, metavar="P", help="ports P..P+4 (default: free)")
    parser.add_argument("--keep", action="store_true", help="leave the network running")
    parser.add_argument("--plain", action="store_true", help="plain text, no colour")
    parser.add_argument("--verbose", "-v", action="store_true", help="show each call made")
    parser.add_argument("--stop", type=Path, metavar="DIR", help="stop a network left by --keep")
    return parser.parse_args(argv)


class _Terminated(Exception):
    """SIGTERM or SIGHUP: stopped from outside, cleaned up like Ctrl-C."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(signal.Signals(signum).name)


def child_env(data: Path) -> dict[str, str]:
    """The children run this checkout's sources, and ``customs`` keeps its checkpoints
    under the demo's directory with no user configuration: the demo never reads or
    writes the official's own ~/.config or ~/.local/state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOMS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["XDG_STATE_HOME"] = str(data / "state")
    env["XDG_CONFIG_HOME"] = str(data / "config")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def prepare_data_dir(given: Path | None) -> Path:
    if given is None:
        return Path(tempfile.mkdtemp(prefix="customs-demo-"))
    data = given.absolute()
    if data.exists() and any(data.iterdir()):
        raise NetworkError(f"--data-dir {data} is not empty; give a new or empty directory")
    data.mkdir(parents=True, exist_ok=True)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.stop is not None:
        return stop(args.stop)
    started = time.monotonic()
    say = Narrator(plain=args.plain, verbose=args.verbose, total_steps=STEPS)
    # Installed explicitly: a shell starts background jobs with SIGINT ignored, and the
    # nodes must still be stopped when such a run is interrupted.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    try:
        data = prepare_data_dir(args.data_dir)
    except NetworkError as exc:
        say.failure(str(exc))
        return 1
    for sub in ("state", "config", "work"):
        (data / sub).mkdir()
    env = child_env(data)
    net = DemoNetwork(data / "network", BIN, env)
    passed = False
    try:
        say.title(
            "Customs Ledger demo: 5 administrations, 4 validators, real customs-node "
            "processes on 127.0.0.1"
        )
        customs = Customs(BIN / "customs", net.genesis, data / "work", env, say)
        run_scenario(Scenario(net, customs, say, data / "work"), args.base_port, started)
        passed = True
    except (StepFailed, NetworkError) as exc:
        say.failure(str(exc))
    except (KeyboardInterrupt, _Terminated) as exc:
        say.failure(f"interrupted ({str(exc) or 'SIGINT'}); stopping every node")
    except (OSError, subprocess.SubprocessError, LookupError, ValueError) as exc:
        # Unexpected answers (a missing JSON field, a call that hangs) still name the step.
        say.failure(f"{type(exc).__name__}: {exc}")
    finally:
        passed = passed and (not args.keep or keep_running(net, say))
        if not (passed and args.keep):
            net.close()
    if passed and args.keep:
        explore(say, net, data)
    elif args.data_dir is None:
        shutil.rmtree(data, ignore_errors=True)
        if not passed:
            print("run with --data-dir DIR to keep the nodes' logs", file=sys.stderr)
    elif not passed:
        print(f"node logs: {net.root}/<ID>/node.log", file=sys.stderr)
    return 0 if passed else 1


def keep_running(net: DemoNetwork, say: Narrator) -> bool:
    """Step 7 stopped the network; ``--keep`` wants it running to explore."""
    try:
        net.start()
    except NetworkError as exc:
        say.failure(f"--keep: restarting the network: {exc}")
        return False
    net.detach()
    return True


def run_scenario(scenario: Scenario, base_port: int | None, started: float) -> None:
    scenario.step_1_network(base_port)
    scenario.step_2_certificates()
    scenario.step_3_voyage()
    scenario.step_4_revocation()
    scenario.step_5_misbehaviour()
    scenario.step_6_crash()
    scenario.step_7_offline()
    scenario.step_8_summary(started)


def explore(say: Narrator, net: DemoNetwork, data: Path) -> None:
    genesis = shlex.quote(str(net.genesis))
    nodes = " ".join(f"--node {n.url}" for n in net.nodes.values())
    env = f"XDG_STATE_HOME={shlex.quote(str(data / 'state'))}"
    lines = [
        f"The network keeps running (data in {data}). Explore it:",
        f"  {env} {BIN}/customs verify CO-CN-{time.gmtime().tm_year}-000124 "
        f"--genesis {genesis} --node {net['DE'].url}",
        f"  {env} {BIN}/customs history shipment/6CN-SHA-{time.gmtime().tm_year}-0001 "
        f"--genesis {genesis} --node {net['DE'].url}",
        f"  {env} {BIN}/customs status --genesis {genesis} {nodes}",
        "API: " + "  ".join(f"{n.member_id} {n.url}/v1/status" for n in net.nodes.values()),
        f"node logs: {net.root}/<ID>/node.log; write tokens: {net.root}/<ID>/api.token",
        f"Stop it: {sys.executable} {SCRIPTS / 'demo.py'} --stop {data}",
    ]
    say.blank()
    for line in lines:
        say.say(line)


def stop(data: Path) -> int:
    try:
        for line in stop_saved(data.absolute()):
            print(line)
    except NetworkError as exc:
        print(f"demo --stop: {exc}", file=sys.stderr)
        return 1
    print(f"the network's files stay in {data}; remove them with: rm -rf {shlex.quote(str(data))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
