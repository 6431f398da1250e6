"""``customs-node top``: a live text dashboard of the local node, from its own API.

Every ``--interval`` seconds it reads ``/v1/status``, ``/readyz`` and ``/metrics`` at the
address node.toml names, and redraws: readiness, height and block rate, entry rate,
round, mempool, refusals, event streams, and each peer with its height. Rates are the
difference between two readings over the time between them, so the first frame shows
none. ``--once`` prints one frame after two readings and exits (scripts, tests).
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from node.admin.status import (
    EXIT_DOWN,
    MAX_ANSWER_BYTES,
    TIMEOUT_S,
    NodeDown,
    api_url,
    config_path,
    fetch_json,
)
from node.daemon.config import load_config
from node.text import plural

__all__ = ["Sample", "cmd_top", "render", "sample"]


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic() of the reading
    status: dict[str, object]
    ready: str | None  # None when ready, else why not
    metrics: dict[str, float] = field(default_factory=dict)  # "name{labels}" -> value


def _metrics(base: str) -> dict[str, float]:
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=TIMEOUT_S) as response:
            text = response.read(MAX_ANSWER_BYTES).decode()
    except (urllib.error.URLError, OSError) as exc:
        raise NodeDown(f"no answer from {base}/metrics: {exc}") from exc
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = float(s.value)
    return out


def sample(base: str) -> Sample:
    code, status = fetch_json(base + "/v1/status")
    if code != 200 or not isinstance(status, dict):
        raise NodeDown(f"{base}/v1/status answered {code}")
    code, ready = fetch_json(base + "/readyz")
    reason = None if code == 200 else str(ready.get("message", code))
    return Sample(time.monotonic(), status, reason, _metrics(base))


def _sum(metrics: dict[str, float], name: str) -> float:
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


def _rate(now: Sample, before: Sample | None, value: float, old: float, unit: str) -> str:
    if before is None or now.at <= before.at:
        return f"… {unit}/s"
    return f"{(value - old) / (now.at - before.at):.2f} {unit}/s"


def render(now: Sample, before: Sample | None, base: str) -> Group:
    s, m = now.status, now.metrics
    old = before.metrics if before is not None else {}
    verdict = (
        Text("READY", style="bold green")
        if now.ready is None
        else Text(f"NOT READY — {now.ready}", style="bold red")
    )
    title = Text.assemble((f"{s['member']} ", "bold"), (f"{base}  ", "dim"), verdict)
    height = int(str(s["height"]))
    old_height = int(str(before.status["height"])) if before is not None else height
    committed = _sum(m, "customs_entries_committed_total")
    refusals = _sum(m, "customs_api_refusals_total")
    rejected = _sum(m, "customs_entries_rejected_total")
    entry_rate = _rate(
        now, before, committed, _sum(old, "customs_entries_committed_total"), "entries"
    )
    rows = [
        ("height", f"{height}  ({_rate(now, before, height, old_height, 'blocks')})"),
        ("entries", f"{committed:.0f} committed  ({entry_rate})"),
        ("round", str(s.get("round"))),
        ("mempool", plural(int(str(s.get("mempool", 0))), "entry", "entries") + " pending"),
        ("syncing", "yes" if s.get("syncing") else "no"),
        ("refused", f"{rejected:.0f} entries, {refusals:.0f} API requests"),
        ("events", f"{_sum(m, 'customs_event_streams'):.0f} streams open"),
    ]
    figures = Table.grid(padding=(0, 2))
    figures.add_column(style="bold")
    figures.add_column()
    for name, value in rows:
        figures.add_row(name, value)
    peers = Table(title="peers", title_justify="left", expand=False)
    for column in ("member", "link", "height", "behind"):
        peers.add_column(column, justify="right" if column in ("height", "behind") else "left")
    raw_peers = s.get("peers")
    for peer in raw_peers if isinstance(raw_peers, list) else []:
        peer_height = peer.get("height")
        behind = "" if peer_height is None else str(max(0, height - int(peer_height)))
        link = Text("up", style="green") if peer.get("connected") else Text("down", style="red")
        peers.add_row(
            str(peer["id"]), link, "" if peer_height is None else str(peer_height), behind
        )
    return Group(title, figures, peers)


def cmd_top(args: argparse.Namespace) -> int:
    config = load_config(config_path(args))
    base = api_url(config)
    console = Console()
    before: Sample | None = None
    try:
        if args.once:
            before = sample(base)
            time.sleep(args.interval)
            console.print(render(sample(base), before, base))
            return 0
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                now = sample(base)
                live.update(render(now, before, base), refresh=True)
                before = now
                time.sleep(args.interval)
    except NodeDown as exc:
        print(f"{config.member_id}: DOWN — {exc}", file=sys.stderr)
        return EXIT_DOWN
    except KeyboardInterrupt:
        return 0
