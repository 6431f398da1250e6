"""Network figures: ``scripts/bench.py network [--validators N[,N...]] [--entries K]``
``[--block-entries B] [--repeat R] [--tls off|on|both] [--only all|saturation|single]``
``[--single S] [--param KEY=VALUE ...]`` (B = the genesis max_block_entries, default
5,000; R saturated runs per N, default 3; links and API in plaintext on loopback by
default, ``on`` over TLS 1.3 with pinned certificates, ``both`` each N plain and TLS in
turns, run by run, in the same invocation; ``--only`` one of the two parts below, both
by default; S entries one at a time, default 200; ``--param`` a genesis parameter for
every network started, over the bench's own, e.g. to compare a new one).

For each validator count N, R times: starts N local validators as real ``customs-node
run`` processes (tests/cluster.py) on a fresh ledger, pre-signs K realistic entries and
posts them at saturation. The run with the median rate gives the saturation figures
(``_ratio_min``/``_ratio_max`` show the spread); the last network then takes entries at
half that rate:

    net_<N>v_entries_per_s   committed entries per second at saturation: K entries posted
                             as fast as the nodes take them (lists of BATCH entries via
                             POST /v1/entries, CLIENTS connections per node, each
                             administration's entries to its own node), from the first
                             POST to the block holding the last entry;
    net_<N>v_p50_ms/_p99_ms  submit-to-commit latency at saturation;
    net_<N>v_half_p50_ms/_half_p99_ms
                             the same with entries paced at half the measured rate;
    net_<N>v_ratio           entries_per_s / (cores x ceiling_per_s / N): the share
                             of the machine's signature-verification ceiling the network
                             reaches, every node checking every entry once;
    net_<N>v_ceiling_per_s   the ceiling N's ratios are taken against (below);
    net_<N>v_node_cpu_us     CPU time the nodes spent per committed entry and node in the
                             median run (user + system, from /proc, until the watched
                             pool drained: the bench reading blocks afterwards is left
                             out): with the cores busy, ratio ~ (1e6 / ceiling) /
                             node_cpu_us, so 0.5 needs a node's whole cost per entry
                             within two bare verifications;
    net_<N>v_rejected        entries that did not commit (should be 0).
    net_<N>v_tls_*           the same figures over TLS (``--tls on`` or ``both``);
    net_<N>v_tls_rate_ratio  with ``both``: TLS entries_per_s / plaintext entries_per_s;
    net_<N>v_tls_cpu_ratio   with ``both``: TLS node_cpu_us / plaintext node_cpu_us;
    net_<N>v_tls_share_ratio with ``both``: TLS ratio / plaintext ratio, each rate taken
                             against the ceiling measured around it, so a shared machine
                             slowing down between the two halves does not pass for TLS.
    net_<N>v_single_p50_ms/_p99_ms/_mean_ms
                             one entry at a time (a fresh network, S entries): each
                             entry is posted only once the one before it is committed,
                             round-robin over the nodes, each by the node's own
                             administration; from just before its POST to the moment
                             the node it was posted to sends it on its ``GET
                             /v1/events`` stream (opened before the first POST, filtered
                             to that node's author): what an official submitting one
                             entry to a quiet network waits for;
    net_<N>v_single_rejected entries of that part that did not commit (should be 0);
    ed25519_verify_per_s     bare ``cryptography`` Ed25519 verifies per second, one
                             process, best of five short rounds taken just before and
                             just after each saturated run; the highest over N's runs is
                             N's ceiling (shown here: the highest over all N); cores =
                             os.cpu_count().

Each "shipment" is four entries by one administration: cert.issue, shipment.declare
citing it, and the loaded and departed events. An entry's commit time is when a node
polled every 20 ms first reports the height of the block that holds it (the mapping is
read from /v1/blocks once the node's pool has drained, so observing costs the nodes next
to nothing meanwhile).

All processes share this machine: on a small shared machine the figures are noisy and
the nodes compete with the client for the same cores. Saturation latencies are queueing
(every entry is posted at once); the half-rate figures are the latency that matters.

Where a node's time goes (thread CPU counted around each step in the nodes, and per-stage
timings of the same work in one process): per entry each node verifies one signature —
in the nodes about 76 us of CPU, against 67-70 us in a hot loop, since five processes
share two cores and their caches — then decodes it once, runs the stateless rules once,
executes and stages it in a block (proposer or validator), and stores it; a node that
received it over HTTP also parses its JSON. The signature is about half of a node's time
interpreted, and more with the hot path compiled (node/native.py), which cuts the other
steps by about a quarter: the report names the build the figures come from.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.entry import Entry, SignedEntry
from ledger.genesis import Params
from ledger.keys import SigningKey
from node.daemon.config import Timeouts
from node.daemon.key_files import load_key
from node.daemon.tls import client_context
from tests import samples
from tests.cluster import Cluster, NodeProcess

TARGETS: dict[str, tuple[str, float] | tuple[str, float, str]] = {
    "net_4v_ratio": (">=", 0.5),
    "net_4v_half_p99_ms": ("<=", 1500.0),
    "net_4v_single_p50_ms": ("<=", 100.0),
    "net_4v_single_p99_ms": ("<=", 250.0),
}

# Administrations and a port in each (UN/LOCODE), in the order validators are added.
PORTS = {
    "CN": "CNSHA",
    "DE": "DEHAM",
    "NL": "NLRTM",
    "US": "USNYC",
    "FR": "FRLEH",
    "JP": "JPTYO",
    "KR": "KRPUS",
    "BR": "BRSSZ",
    "IN": "INNSA",
    "GB": "GBFXT",
}
BATCH = 250
CLIENTS = 2
POLL_S = 0.02
DRAINED_POLLS = 3
DAY_MS = 86_400_000
# A node's default consensus timeouts (node.toml), not the test cluster's short ones: a
# validator must receive and re-execute a 5,000-entry proposal within propose_ms while
# it verifies the flood of gossiped entries.
NODE_SETTINGS: dict[str, int | str] = {
    **{f.name: getattr(Timeouts(), f.name) for f in fields(Timeouts)},
    "reconnect_min_ms": 50,
    "reconnect_max_ms": 500,
    "mempool_max_entries": 200_000,
    "mempool_max_bytes": 512 * 1024 * 1024,
}
BLOCK_ENTRIES = Params().max_block_entries  # the genesis default
BLOCK_INTERVAL_MS = 200
CHAIN = "customs-bench-1"
SINGLE_ENTRIES = 200
SINGLE_TIMEOUT_S = 30.0  # one entry not committed by then counts as rejected


@dataclass
class Options:
    validators: list[int] = field(default_factory=lambda: [4])
    entries: int = 20_000
    block_entries: int = BLOCK_ENTRIES
    repeat: int = 3
    tls: str = "off"
    only: str = "all"
    single: int = SINGLE_ENTRIES
    params: dict[str, int] = field(default_factory=dict)


OPTIONS = Options()


def configure(argv: Sequence[str]) -> None:
    """Take this section's own options (bench.py passes what it does not know)."""
    parser = argparse.ArgumentParser(prog="bench.py network")
    parser.add_argument("--validators", default="4", help="N or a list N,N,...")
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--block-entries", type=int, default=BLOCK_ENTRIES)
    parser.add_argument("--repeat", type=int, default=3, help="saturated runs per N (median)")
    parser.add_argument(
        "--tls", choices=("off", "on", "both"), default="off", help="links and API over TLS"
    )
    parser.add_argument(
        "--only",
        choices=("all", "saturation", "single"),
        default="all",
        help="saturation: the saturated and half-rate runs; single: one entry at a time",
    )
    parser.add_argument(
        "--single", type=int, default=SINGLE_ENTRIES, help="entries posted one at a time"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="genesis parameter for every network (repeatable)",
    )
    args = parser.parse_args(list(argv))
    OPTIONS.validators = [int(n) for n in args.validators.split(",")]
    if not all(1 <= n <= len(PORTS) for n in OPTIONS.validators):
        parser.error(f"--validators must be 1..{len(PORTS)}")
    OPTIONS.entries = args.entries
    OPTIONS.block_entries = args.block_entries
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    OPTIONS.repeat = args.repeat
    OPTIONS.tls = args.tls
    OPTIONS.only = args.only
    if args.single < 1:
        parser.error("--single must be at least 1")
    OPTIONS.single = args.single
    try:
        OPTIONS.params = parse_params(args.param)
    except ValueError as exc:
        parser.error(str(exc))


def parse_params(items: Sequence[str]) -> dict[str, int]:
    """``KEY=VALUE`` genesis parameters (all integers); ValueError naming a bad one.

    Names are not checked here: ``customs-node testnet`` refuses an unknown one, so a
    parameter added to genesis later works without touching the bench."""
    params: dict[str, int] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value.lstrip("-").isdigit():
            raise ValueError(f"--param {item!r}: expected KEY=INTEGER")
        params[key] = int(value)
    return params


# ---- the Ed25519 ceiling --------------------------------------------------------------


def ed25519_verify_per_s(rounds: int = 5, seconds: float = 0.4) -> float:
    """The best of several short rounds: a brief stall on a shared machine lowers one
    round, and a lower ceiling would flatter the ratio."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    message = os.urandom(400)  # about one entry
    sig = key.sign(message)
    best = 0.0
    for _ in range(rounds):
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            for _ in range(200):
                public.verify(sig, message)
            count += 200
        best = max(best, count / elapsed)
    return best


# ---- entries ----------------------------------------------------------------------------


def shipment_entries(
    chain: str, author: str, key: SigningKey, partner: str, tag: str, now: int
) -> list[SignedEntry]:
    """Four entries of one shipment by ``author``; they must commit in this order."""
    cert_id = f"{author}-{tag}"
    ucr = f"6{author}{tag}"
    cert = samples.cert_issue(
        cert_id,
        author,
        destination=partner,
        valid_from=now - DAY_MS,
        valid_until=now + 300 * DAY_MS,
    )
    declare = samples.declare(
        ucr,
        origin_port=PORTS[author],
        destination_port=PORTS[partner],
        consignee_country=partner,
        containers=(samples.container("MSC", int(tag[-6:])),),
        certificates=(cert_id,),
    )
    bodies = [
        ("cert.issue", cert),
        ("shipment.declare", declare),
        ("shipment.event", samples.event(ucr, "loaded", PORTS[author])),
        ("shipment.event", samples.event(ucr, "departed", PORTS[author])),
    ]
    return [Entry(chain, kind, author, now, body).sign(key) for kind, body in bodies]


def presign(cluster: Cluster, count: int, run: str) -> dict[str, list[SignedEntry]]:
    """Member id -> that member's entries, whole shipments in order, ``count`` in all."""
    ids = list(cluster.nodes)
    keys = {m: load_key(cluster[m].root / "node.key") for m in ids}
    now = int(time.time() * 1000)
    per_member: dict[str, list[SignedEntry]] = {m: [] for m in ids}
    for n in range((count + 3) // 4):
        author = ids[n % len(ids)]
        partner = ids[(n + 1) % len(ids)] if len(ids) > 1 else "DE"
        tag = f"{run}{n:06d}"
        per_member[author].extend(
            shipment_entries(cluster.chain_id, author, keys[author], partner, tag, now)
        )
    return per_member


@dataclass(frozen=True)
class Batch:
    """Entries ready to post: their ids and the JSON request body, built before timing."""

    ids: list[str]
    body: bytes


def chunks(entries: list[SignedEntry], size: int) -> list[Batch]:
    """Batches of whole shipments (a multiple of 4), so batches may arrive in any order."""
    size = max(4, size - size % 4)
    return [
        Batch(
            [e.id_hex for e in entries[i : i + size]],
            json.dumps([e.to_json() for e in entries[i : i + size]]).encode(),
        )
        for i in range(0, len(entries), size)
    ]


# ---- submitting and watching -------------------------------------------------------------


@dataclass
class Run:
    sent: dict[str, float] = field(default_factory=dict)  # entry id -> monotonic send time
    height_seen: dict[int, float] = field(default_factory=dict)
    mempool: int = -1  # the watched node's, at the last poll
    failures: list[str] = field(default_factory=list)
    # The nodes' CPU seconds once the watched pool drained, before the bench reads blocks.
    nodes_cpu_drained: float = float("nan")


async def post(session: aiohttp.ClientSession, node: NodeProcess, batch: Batch, run: Run) -> None:
    headers = {"Authorization": f"Bearer {node.token}", "Content-Type": "application/json"}
    started = time.monotonic()
    for entry_id in batch.ids:
        run.sent[entry_id] = started
    while True:
        url = node.url + "/v1/entries"
        async with session.post(url, data=batch.body, headers=headers) as reply:
            if reply.status == 202:
                return
            text = await reply.text()
            if reply.status != 429:
                run.failures.append(f"{reply.status} {text[:200]}")
                return
        await asyncio.sleep(0.05)  # mempool full: back off, as a client should


async def saturate(
    session: aiohttp.ClientSession, cluster: Cluster, work: dict[str, list[SignedEntry]], run: Run
) -> None:
    """CLIENTS connections per node, each posting its share of batches back to back."""

    async def stream(node: NodeProcess, batches: list[Batch]) -> None:
        for batch in batches:
            await post(session, node, batch, run)

    streams = []
    for member_id, entries in work.items():
        batches = chunks(entries, BATCH)
        streams += [stream(cluster[member_id], batches[c::CLIENTS]) for c in range(CLIENTS)]
    await asyncio.gather(*streams)


async def pace(
    session: aiohttp.ClientSession,
    cluster: Cluster,
    work: dict[str, list[SignedEntry]],
    run: Run,
    rate: float,
) -> None:
    """Small batches, round-robin over the nodes, each sent when the schedule says."""
    per_node = {m: chunks(entries, int(rate * 0.05)) for m, entries in work.items()}
    order = [
        (m, batch)
        for group in itertools.zip_longest(*per_node.values())
        for m, batch in zip(per_node, group, strict=True)
        if batch is not None
    ]
    start, due, tasks = time.monotonic(), 0.0, []
    for member_id, batch in order:
        await asyncio.sleep(max(0.0, start + due - time.monotonic()))
        tasks.append(asyncio.create_task(post(session, cluster[member_id], batch, run)))
        due += len(batch.ids) / rate
    await asyncio.gather(*tasks)


async def watch_heights(
    session: aiohttp.ClientSession, url: str, run: Run, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        async with session.get(url + "/v1/status") as reply:
            status = await reply.json()
        height, run.mempool = status["height"], status["mempool"]
        now = time.monotonic()
        for h in range(max(run.height_seen, default=0) + 1, height + 1):
            run.height_seen[h] = now
        await asyncio.sleep(POLL_S)


async def entry_heights(
    session: aiohttp.ClientSession, url: str, first: int, last: int, found: dict[str, int]
) -> None:
    for h in range(first, last + 1):
        async with session.get(f"{url}/v1/blocks/{h}") as reply:
            block = await reply.json()
        for entry in block["entries"]:
            found[entry["id"]] = h


async def drive(
    cluster: Cluster, work: dict[str, list[SignedEntry]], rate: float | None
) -> tuple[Run, dict[str, int], int]:
    """Submit ``work`` (at ``rate`` entries/s in all, or flat out); wait for every commit."""
    run = Run()
    total = sum(len(entries) for entries in work.values())
    watched = cluster[next(iter(cluster.nodes))]
    timeout = aiohttp.ClientTimeout(total=120)
    # The bench reads its own nodes: TLS as they serve it, without pinning.
    connector = aiohttp.TCPConnector(limit=0, ssl=client_context() if cluster.tls else True)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        first = watched.height() + 1
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_heights(session, watched.url, run, stop))
        if rate is None:
            await saturate(session, cluster, work, run)
        else:
            await pace(session, cluster, work, run, rate)
        # Wait for the watched node's pool to stay empty (every entry reached it by
        # gossip and is committed or rejected), then map entries to heights: reading
        # blocks only afterwards keeps the observer's cost out of the measurement.
        deadline = time.monotonic() + 120
        drained = 0
        while drained < DRAINED_POLLS and not run.failures and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            drained = drained + 1 if run.mempool == 0 else 0
        run.nodes_cpu_drained = nodes_cpu_seconds(cluster)
        stop.set()
        await watcher
        heights: dict[str, int] = {}
        await entry_heights(session, watched.url, first, max(run.height_seen, default=0), heights)
    return run, heights, total


def latencies_ms(run: Run, heights: dict[str, int]) -> list[float]:
    return sorted(
        (run.height_seen[h] - run.sent[i]) * 1000 for i, h in heights.items() if i in run.sent
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


@dataclass
class Saturation:
    rate: float
    ceiling: float  # the higher of the ceilings measured just before and just after
    latencies_ms: list[float]
    rejected: int
    node_cpu_us: float  # CPU the nodes spent per committed entry and node (nan if unknown)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process (Linux /proc; nan elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nodes_cpu_seconds(cluster: Cluster) -> float:
    return sum(cpu_seconds(node.proc.pid) for node in cluster.nodes.values() if node.proc)


def saturate_once(cluster: Cluster, entries: int, tag: str) -> Saturation:
    work = presign(cluster, entries, tag)
    before = ed25519_verify_per_s()
    cpu_before = nodes_cpu_seconds(cluster)
    run, heights, total = asyncio.run(drive(cluster, work, None))
    cpu = run.nodes_cpu_drained - cpu_before
    ceiling = max(before, ed25519_verify_per_s())
    committed = [run.height_seen[h] for h in heights.values()]
    rate = len(heights) / (max(committed) - min(run.sent.values()))
    node_cpu_us = cpu / max(1, len(heights)) / len(cluster.nodes) * 1e6
    return Saturation(rate, ceiling, latencies_ms(run, heights), total - len(heights), node_cpu_us)


def ratio(rate: float, ceiling: float, n: int) -> float:
    return rate / ((os.cpu_count() or 1) * ceiling / n)


def start_cluster(tmp: str, n: int, tls: bool = False) -> Cluster:
    params = {
        "block_interval_ms": BLOCK_INTERVAL_MS,
        "max_block_entries": OPTIONS.block_entries,
        **OPTIONS.params,
    }
    cluster = Cluster(
        Path(tmp),
        list(PORTS)[:n],
        params=params,
        settings=NODE_SETTINGS,
        chain_id="customs-bench-1",
        tls=tls,
    )
    try:
        cluster.start()
        cluster.wait_height(2)
    except BaseException:
        cluster.close()
        raise
    return cluster


def bench_validators(
    n: int, entries: int, results: dict[str, float], variants: Sequence[bool] = (False,)
) -> None:
    """``--repeat`` saturated runs, each on a fresh network, then one at half the median
    rate. The ceiling is measured just before and just after every run, and every run's
    ratio is taken against the highest of them: a shared machine's speed drifts, and a
    ceiling caught in a slow moment would flatter the ratio. ``variants`` (plaintext
    False, TLS True) take turns run by run, so both see the same drift."""
    runs: dict[bool, list[Saturation]] = {tls: [] for tls in variants}
    halves: dict[bool, tuple[Run, dict[str, int], int]] = {}
    for r in range(OPTIONS.repeat):
        for tls in variants:
            with (
                tempfile.TemporaryDirectory(prefix="bench-net-") as tmp,
                start_cluster(tmp, n, tls) as cluster,
            ):
                runs[tls].append(run := saturate_once(cluster, entries, f"S{r}"))
                print(
                    f"  {n} validators{' over TLS' if tls else ''}, run {r + 1}/"
                    f"{OPTIONS.repeat}: {run.rate:,.0f} entries/s,"
                    f" ceiling around it {run.ceiling:,.0f}/s,"
                    f" {run.node_cpu_us:,.0f} us of node CPU per entry and node",
                    file=sys.stderr,
                    flush=True,
                )
                if r < OPTIONS.repeat - 1:
                    continue
                median = sorted(runs[tls], key=lambda run: run.rate)[len(runs[tls]) // 2]
                # Half rate for about 10 s, but no more entries than asked for.
                half = max(4 * n, min(entries // 2, int(median.rate / 2 * 10)))
                work = presign(cluster, half, "H")
                halves[tls] = asyncio.run(drive(cluster, work, median.rate / 2))
    for tls in variants:
        report(n, tls, runs[tls], halves[tls], results)


# ---- one entry at a time -----------------------------------------------------------------


def presign_single(cluster: Cluster, count: int, run: str) -> list[tuple[str, SignedEntry]]:
    """``count`` (member id, entry) pairs in posting order: round-robin over the members,
    each member's entries whole shipments in their commit order."""
    ids = list(cluster.nodes)
    keys = {m: load_key(cluster[m].root / "node.key") for m in ids}
    now = int(time.time() * 1000)
    per_member = -(-count // len(ids))
    own: dict[str, list[SignedEntry]] = {}
    for k, member in enumerate(ids):
        partner = ids[(k + 1) % len(ids)] if len(ids) > 1 else "DE"
        own[member] = [
            entry
            for s in range(-(-per_member // 4))
            for entry in shipment_entries(
                cluster.chain_id, member, keys[member], partner, f"{run}{s:06d}", now
            )
        ]
    return [(ids[i % len(ids)], own[ids[i % len(ids)]][i // len(ids)]) for i in range(count)]


class EventWatch:
    """One node's ``GET /v1/events`` stream, filtered to one author: the moment each
    entry's event arrives, and a future per entry being waited for."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.closed: str | None = None  # why the node ended the stream, if it did

    async def open(self, session: aiohttp.ClientSession, node: NodeProcess) -> asyncio.Task[None]:
        """Connect and return the reading task once the node has answered: from then
        on every commit is on the stream (no ``from``: it starts at the log's end)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        url = f"{node.url}/v1/events?author={node.member_id}"
        reply = await session.get(url, timeout=timeout)
        if reply.status != 200:
            text = await reply.text()
            reply.release()
            raise RuntimeError(f"{node.member_id} /v1/events: {reply.status} {text[:200]}")
        # The node writes ``retry:`` right after fixing the stream's start position.
        while not (line := await reply.content.readline()).startswith(b"retry:"):
            if not line:
                raise RuntimeError(f"{node.member_id} /v1/events ended before it began")
        return asyncio.create_task(self._read(reply))

    async def _read(self, reply: aiohttp.ClientResponse) -> None:
        event = ""
        try:
            async for raw in reply.content:
                line = raw.rstrip(b"\r\n")
                if line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line.startswith(b"data:") and event == "entry":
                    seen = time.monotonic()  # before parsing: the arrival is what counts
                    waiter = self.waiting.pop(json.loads(line[5:])["id"], None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(seen)
                elif line.startswith(b"data:") and event == "close":
                    self.closed = line[5:].strip().decode()
                elif not line:
                    event = ""
        finally:
            reply.release()

    def expect(self, entry_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[entry_id] = future
        return future


async def post_one(
    session: aiohttp.ClientSession, node: NodeProcess, body: bytes
) -> tuple[float, str | None]:
    """POST one entry: (monotonic time just before sending, None or why it failed)."""
    headers = {"Authorization": f"Bearer {node.token}", "Content-Type": "application/json"}
    started = time.monotonic()
    async with session.post(node.url + "/v1/entries", data=body, headers=headers) as reply:
        if reply.status == 202:
            return started, None
        return started, f"{reply.status} {(await reply.text())[:200]}"


async def drive_single(
    cluster: Cluster, order: list[tuple[str, SignedEntry]]
) -> tuple[list[float], list[str]]:
    """Post ``order`` one entry at a time: (latencies in ms, failures)."""
    bodies = [(m, e.id_hex, json.dumps(e.to_json()).encode()) for m, e in order]
    connector = aiohttp.TCPConnector(limit=0, ssl=client_context() if cluster.tls else True)
    timeout = aiohttp.ClientTimeout(total=60)
    latencies: list[float] = []
    failures: list[str] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        watches = {m: EventWatch() for m in cluster.nodes}
        readers = [await watches[m].open(session, cluster[m]) for m in cluster.nodes]
        try:
            for member_id, entry_id, body in bodies:
                watch = watches[member_id]
                committed = watch.expect(entry_id)  # before the POST: it may commit fast
                started, failed = await post_one(session, cluster[member_id], body)
                if failed is not None:
                    failures.append(f"{member_id}: {failed}")
                    watch.waiting.pop(entry_id, None)
                    continue
                try:
                    async with asyncio.timeout(SINGLE_TIMEOUT_S):
                        seen = await committed
                except TimeoutError:
                    failures.append(
                        f"{member_id}: {entry_id[:12]} not committed within"
                        f" {SINGLE_TIMEOUT_S:g} s (stream closed: {watch.closed})"
                    )
                    continue
                latencies.append((seen - started) * 1000)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    return latencies, failures


def bench_single(n: int, count: int, tls: bool, results: dict[str, float]) -> None:
    """``count`` entries one at a time on a fresh network of ``n`` validators."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-net-") as tmp,
        start_cluster(tmp, n, tls) as cluster,
    ):
        order = presign_single(cluster, count, "Q")
        latencies, failures = asyncio.run(drive_single(cluster, order))
    for failure in failures[:5]:
        print(f"  one at a time: {failure}", file=sys.stderr, flush=True)
    latencies.sort()
    prefix = f"net_{n}v_" + ("tls_" if tls else "") + "single_"
    results[prefix + "p50_ms"] = percentile(latencies, 0.50)
    results[prefix + "p99_ms"] = percentile(latencies, 0.99)
    results[prefix + "mean_ms"] = sum(latencies) / len(latencies) if latencies else float("nan")
    results[prefix + "rejected"] = float(count - len(latencies))
    print(
        f"  {n} validators{' over TLS' if tls else ''}, {count} entries one at a time:"
        f" p50 {results[prefix + 'p50_ms']:,.0f} ms, p99 {results[prefix + 'p99_ms']:,.0f} ms",
        file=sys.stderr,
        flush=True,
    )


def report(
    n: int,
    tls: bool,
    runs: list[Saturation],
    half: tuple[Run, dict[str, int], int],
    results: dict[str, float],
) -> None:
    median = sorted(runs, key=lambda run: run.rate)[len(runs) // 2]
    run2, heights2, total2 = half
    ceiling = max(run.ceiling for run in runs)
    prefix = f"net_{n}v_" + ("tls_" if tls else "")
    results[prefix + "entries_per_s"] = median.rate
    results[prefix + "p50_ms"] = percentile(median.latencies_ms, 0.50)
    results[prefix + "p99_ms"] = percentile(median.latencies_ms, 0.99)
    results[prefix + "ratio"] = ratio(median.rate, ceiling, n)
    results[prefix + "ratio_min"] = ratio(min(run.rate for run in runs), ceiling, n)
    results[prefix + "ratio_max"] = ratio(max(run.rate for run in runs), ceiling, n)
    results[prefix + "ceiling_per_s"] = ceiling
    results[prefix + "node_cpu_us"] = median.node_cpu_us
    results["ed25519_verify_per_s"] = max(results.get("ed25519_verify_per_s", 0.0), ceiling)
    lat2 = latencies_ms(run2, heights2)
    results[prefix + "half_p50_ms"] = percentile(lat2, 0.50)
    results[prefix + "half_p99_ms"] = percentile(lat2, 0.99)
    results[prefix + "rejected"] = float(sum(run.rejected for run in runs) + total2 - len(heights2))


def measure(results: dict[str, float]) -> None:
    results["cores"] = float(os.cpu_count() or 1)
    for n in OPTIONS.validators:
        variants = {"off": (False,), "on": (True,), "both": (False, True)}[OPTIONS.tls]
        if OPTIONS.only in ("all", "single"):
            for over_tls in variants:
                bench_single(n, OPTIONS.single, over_tls, results)
        if OPTIONS.only == "single":
            continue
        bench_validators(n, OPTIONS.entries, results, variants)
        if OPTIONS.tls == "both":
            plain, tls = f"net_{n}v_", f"net_{n}v_tls_"
            rate = results[tls + "entries_per_s"] / results[plain + "entries_per_s"]
            results[tls + "rate_ratio"] = rate
            cpu = results[tls + "node_cpu_us"] / results[plain + "node_cpu_us"]
            results[tls + "cpu_ratio"] = cpu
            results[tls + "share_ratio"] = results[tls + "ratio"] / results[plain + "ratio"]


if __name__ == "__main__":
    configure(sys.argv[1:])
    figures: dict[str, float] = {}
    measure(figures)
    for name, value in figures.items():
        print(f"{name:28} {value:12,.1f}")
