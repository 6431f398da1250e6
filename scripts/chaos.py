"""A seeded fault campaign on a real local network (docs/reliability.md).

    python scripts/chaos.py --seed 7 --minutes 2
    python scripts/chaos.py --seed 7 --minutes 30 --validators 4 --followers 1 --keep

``customs-node testnet`` writes the network; every node runs as its own ``customs-node
run`` process, and each node dials each peer through a small TCP proxy of ours (its
node.toml ``[peers]`` table names the proxy), so a partition or a slow link is a proxy
that refuses or delays. The seed decides the whole schedule, printed first: SIGKILL and
restart of one validator or of f at once, SIGSTOP/SIGCONT, every node killed at once,
partitions, slow links, a full disk (each node's data directory is its own tmpfs, filled
to the last byte), and a node restarted with its data directory emptied. Meanwhile a
client signs entries, posts each to a random node (again to another while it is pending,
as a careful client does) and records every 202 and every commit it is told of.

At the end every fault is healed and the checks run: liveness returns within a bound;
every entry reported committed, and every entry answered 202, is committed on every node
at one height; the nodes' stores agree on the header hash, ``log_root`` and
``state_root`` at every common height; no validator signed two different proposals or
votes for one height, round and type (the messages in every node's debug log, sent and
received, and each validator's signing record); no node exited that the schedule did not
stop; nothing is left running. Exit 0 or 1 with the seed and the command that replays it;
the last line is ``N passed, M failed``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCRIPT = Path(sys.executable).parent / "customs-node"
CHAIN_ID = "customs-chaos-1"
CODES = ("CN", "NL", "DE", "SG", "US", "JP", "KR", "FR", "GB", "IN", "BR", "ZA")
# A one-second heartbeat: the campaign judges liveness by heights, busy or idle.
PARAMS = {"block_interval_ms": 300, "empty_block_interval_ms": 1000}
SETTINGS = {
    "timeouts.propose_ms": 600,
    "timeouts.propose_delta_ms": 200,
    "timeouts.prevote_ms": 300,
    "timeouts.prevote_delta_ms": 200,
    "timeouts.precommit_ms": 300,
    "timeouts.precommit_delta_ms": 200,
    "timeouts.reconnect_min_ms": 50,
    "timeouts.reconnect_max_ms": 1000,
    "log.level": "debug",  # every proposal and vote sent or received: the double-sign check
}
KINDS = ("kill", "kill_f", "pause", "kill_all", "partition", "slow", "disk_full", "wipe")
WEIGHTS = (30, 12, 10, 4, 14, 10, 6, 6)
TMPFS_BYTES = 64 * 1024 * 1024
FAR = 2_082_758_400_000  # 2036-01-01: certificates that stay valid whatever today is


class ChaosError(Exception):
    """The harness itself could not do what the schedule says."""


# -- the schedule ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the start of the campaign
    kind: str
    targets: tuple[str, ...]
    hold: float  # seconds the fault lasts
    delay_ms: int = 0  # slow links

    def describe(self) -> str:
        extra = f" +{self.delay_ms} ms" if self.kind == "slow" else ""
        return (
            f"t={self.at:7.1f}s {self.kind:9} {','.join(self.targets):18} {self.hold:4.1f}s{extra}"
        )


def plan(seed: int, seconds: float, members: list[str], validators: list[str],
         kinds: Iterable[str] = KINDS) -> list[Fault]:  # fmt: skip
    """The whole schedule, from the seed alone."""
    rng = random.Random(seed)
    allowed = [(k, w) for k, w in zip(KINDS, WEIGHTS, strict=True) if k in set(kinds)]
    f = (len(validators) - 1) // 3
    faults, at = [], 2.0
    while at < seconds:
        kind = rng.choices([k for k, _ in allowed], [w for _, w in allowed])[0]
        hold = round(rng.uniform(1.0, 5.0), 1)
        delay = 0
        targets: tuple[str, ...]
        if kind == "kill":
            targets = (rng.choice(validators),)
        elif kind == "kill_f":
            targets = tuple(sorted(rng.sample(validators, max(f, 1))))
        elif kind in ("pause", "disk_full", "wipe"):
            targets = (rng.choice(members),)
        elif kind == "kill_all":
            targets = tuple(members)
        elif kind == "partition":
            side = rng.randint(1, len(members) // 2)
            targets = tuple(sorted(rng.sample(members, side)))
        else:  # slow: every link of one node
            targets = (rng.choice(members),)
            delay = rng.choice((50, 100, 200, 400))
        faults.append(Fault(round(at, 1), kind, targets, hold, delay))
        at += hold + round(rng.uniform(1.0, 4.0), 1)
    return faults


# -- the proxies ----------------------------------------------------------------------


class LinkProxy:
    """One direction of dialing (``src`` dials ``dst``) through 127.0.0.1:``port``."""

    def __init__(self, src: str, dst: str, target_port: int) -> None:
        self.src, self.dst, self.target_port = src, dst, target_port
        self.port = 0
        self.blocked = False
        self.delay = 0.0
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.refused = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        self.blocked = True
        for writer in list(self.writers):
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self.writers.discard(w)
                w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Chunks are queued with the time they are due, so a slow link adds latency
        # without reordering bytes or cutting throughput to one chunk per delay.
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def send() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while not self.blocked:
                chunk = await reader.read(65536)
                queue.put_nowait((loop.time() + self.delay, chunk))
                if not chunk:
                    break
            await sender
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sender.cancel()
            writer.transport.abort()


class Proxies:
    """Every directed pair's proxy, served by an event loop in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.links: dict[tuple[str, str], LinkProxy] = {}

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            result = fn()
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def add(self, src: str, dst: str, target_port: int) -> int:
        link = LinkProxy(src, dst, target_port)
        self._call(link.start)
        self.links[src, dst] = link
        return link.port

    def partition(self, side: Iterable[str]) -> None:
        inside = set(side)

        def cut() -> None:
            for (a, b), link in self.links.items():
                if (a in inside) != (b in inside):
                    link.cut()

        self._call(cut)

    def slow(self, member: str, delay_ms: int) -> None:
        def set_delay() -> None:
            for (a, b), link in self.links.items():
                if member in (a, b):
                    link.delay = delay_ms / 1000

        self._call(set_delay)

    def heal(self) -> None:
        def clear() -> None:
            for link in self.links.values():
                link.blocked, link.delay = False, 0.0

        self._call(clear)

    def close(self) -> None:
        async def shut() -> None:
            for link in self.links.values():
                link.cut()
                if link.server is not None:
                    link.server.close()
                    await link.server.wait_closed()

        if self.loop.is_running():
            with contextlib.suppress(Exception):
                self._call(shut)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        self.loop.close()

    def listening(self) -> list[int]:
        return [
            link.port for link in self.links.values() if link.server and link.server.is_serving()
        ]


# -- the nodes ------------------------------------------------------------------------


def http(method: str, url: str, body: Any = None, *, token: str | None = None,
         timeout: float = 3.0) -> tuple[int, Any]:  # fmt: skip
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, None


@dataclass
class Node:
    member_id: str
    root: Path
    port: int
    token: str
    validator: bool
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False
    expected_exit: bool = False  # the schedule stopped it, or filled its disk
    unexpected: list[str] = field(default_factory=list)
    mounted: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "node.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict[str, Any] | None:
        try:
            code, doc = http("GET", self.url + "/v1/status", timeout=2.0)
        except (OSError, ValueError):
            return None
        return doc if code == 200 else None

    def height(self) -> int:
        status = self.status()
        return -1 if status is None else int(status["height"])

    def log_tail(self, lines: int = 4) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(max(0, self.log_path.stat().st_size - 8192))
            text = handle.read().decode(errors="replace")
        return " | ".join(text.strip().splitlines()[-lines:])


class Network:
    def __init__(self, root: Path, validators: int, followers: int, *, tmpfs: bool) -> None:
        self.root = root
        self.nodes: dict[str, Node] = {}
        self.proxies = Proxies()
        self.tmpfs = tmpfs
        self.members = list(CODES[: validators + followers])
        self.validators = self.members[:validators]
        self.genesis: Any = None
        self.log = root / "chaos.log"

    # -- set-up

    def create(self) -> None:
        from node.admin.cli import main as node_main
        from node.admin.provision import load_node
        from node.daemon.config import load_config

        members = [
            {"id": m, "name": f"{m} Customs", "jurisdictions": [m],
             "roles": ["issuer", "customs", *(["validator"] if m in self.validators else [])]}
            for m in self.members
        ]  # fmt: skip
        members_file = self.root / "members.json"
        members_file.write_text(json.dumps(members))
        argv = [
            "testnet", "--dir", str(self.root / "net"), "--members", str(members_file),
            "--chain-id", CHAIN_ID,
            *(f"--param={k}={v}" for k, v in PARAMS.items()),
            *(f"--set={k}={v}" for k, v in SETTINGS.items()),
        ]  # fmt: skip
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = node_main(argv)
        if code != 0:
            raise ChaosError(f"customs-node testnet failed: {err.getvalue().strip()}")
        net = self.root / "net"
        for m in self.members:
            config = load_config(net / m / "node.toml")
            token = (net / m / "api.token").read_text().strip()
            self.nodes[m] = Node(m, net / m, config.listen_port, token, m in self.validators)
        # Each node dials each peer through that pair's proxy.
        for m, node in self.nodes.items():
            lines = ["", "[peers]"]
            for peer in self.members:
                if peer != m:
                    port = self.proxies.add(m, peer, self.nodes[peer].port)
                    lines.append(f'{peer} = "http://127.0.0.1:{port}"')
            with (node.root / "node.toml").open("a") as handle:
                handle.write("\n".join(lines) + "\n")
            if self.tmpfs:
                _mount_tmpfs(node.data)
                node.mounted = True
            load_node(node.root / "node.toml")  # what run checks, with the proxies in
        self.genesis = load_node(next(iter(self.nodes.values())).root / "node.toml")[1]

    def keys(self) -> dict[str, Any]:
        from node.admin.provision import load_node

        return {m: load_node(n.root / "node.toml")[2] for m, n in self.nodes.items()}

    # -- processes

    def start(self, ids: Iterable[str], timeout: float = 40.0) -> None:
        chosen = list(ids)
        for m in chosen:
            node = self.nodes[m]
            if node.running:
                raise ChaosError(f"{m} is already running")
            with node.log_path.open("ab") as log:
                node.proc = subprocess.Popen(
                    [str(SCRIPT), "run", "--config", str(node.root / "node.toml")],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )  # fmt: skip
            node.expected_exit = False
            node.paused = False
        deadline = time.monotonic() + timeout
        while not all(self.nodes[m].status() is not None for m in chosen):
            for m in chosen:
                node = self.nodes[m]
                if not node.running:
                    raise ChaosError(f"{m} exited with {node.proc and node.proc.returncode} at "
                                     f"start: {node.log_tail()}")  # fmt: skip
            if time.monotonic() > deadline:
                raise ChaosError(f"{chosen} did not answer within {timeout:g} s of starting")
            time.sleep(0.1)

    def kill(self, ids: Iterable[str]) -> None:
        for m in ids:
            node = self.nodes[m]
            node.expected_exit = True
            if node.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGKILL)
        for m in ids:
            proc = self.nodes[m].proc
            if proc is not None:
                proc.wait(20)
            self.nodes[m].paused = False

    def pause(self, m: str, stop: bool) -> None:
        node = self.nodes[m]
        if node.proc is not None and node.running:
            os.killpg(node.proc.pid, signal.SIGSTOP if stop else signal.SIGCONT)
            node.paused = stop

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM each node (SIGCONT first) and wait for it; SIGKILL after 20 s."""
        codes: dict[str, int | None] = {}
        for node in self.nodes.values():
            if node.running and node.proc is not None:
                node.expected_exit = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGCONT)
                    node.proc.send_signal(signal.SIGTERM)
        for m, node in self.nodes.items():
            if node.proc is None:
                continue
            try:
                codes[m] = node.proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGKILL)
                codes[m] = node.proc.wait()
        return codes

    def check_exits(self) -> None:
        """Note every node that exited without the schedule stopping it."""
        for node in self.nodes.values():
            if node.proc is not None and not node.expected_exit and node.proc.poll() is not None:
                node.unexpected.append(f"exit {node.proc.returncode}: {node.log_tail()}")
                node.expected_exit = True  # noted once

    def close(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGKILL)
                node.proc.wait()
        self.proxies.close()
        for node in self.nodes.values():
            if node.mounted:
                _unmount(node.data)
                node.mounted = False

    # -- faults on the disk

    def fill_disk(self, m: str) -> int:
        """Fill ``m``'s tmpfs to the last byte; return the bytes written."""
        written = 0
        block = b"\0" * (1 << 20)
        with contextlib.suppress(OSError), (self.nodes[m].data / "filler").open("wb") as out:
            while True:
                out.write(block)
                out.flush()
                written += len(block)
        # The last partial megabyte too, so that not even a small write fits.
        with contextlib.suppress(OSError), (self.nodes[m].data / "filler2").open("wb") as out:
            for _ in range(1 << 10):
                out.write(b"\0" * 1024)
                out.flush()
                written += 1024
        return written

    def free_disk(self, m: str) -> None:
        for name in ("filler", "filler2"):
            with contextlib.suppress(FileNotFoundError):
                (self.nodes[m].data / name).unlink()

    def wipe(self, m: str) -> None:
        for child in self.nodes[m].data.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    def heights(self) -> dict[str, int]:
        return {m: n.height() for m, n in self.nodes.items()}


def _mount_tmpfs(path: Path) -> None:
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES},mode=0700", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ChaosError(f"cannot mount a tmpfs at {path}: {done.stderr.strip()}")


def _unmount(path: Path) -> None:
    for _ in range(20):
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.25)


def tmpfs_available(scratch: Path) -> bool:
    probe = scratch / "tmpfs-probe"
    probe.mkdir(exist_ok=True)
    try:
        _mount_tmpfs(probe)
    except (ChaosError, OSError):
        return False
    _unmount(probe)
    probe.rmdir()
    return True


# -- the client -----------------------------------------------------------------------


@dataclass
class Pending:
    entry: dict[str, Any]
    first: float
    last_post: float
    posts: int = 1


class Client:
    """Signs cert.issue entries, posts them to random nodes, records 202s and commits."""

    def __init__(self, net: Network, seed: int, rate: float) -> None:
        self.net = net
        self.rng = random.Random(seed ^ 0x5EED)
        self.rate = rate
        self.keys = net.keys()
        self.accepted: dict[str, Pending] = {}
        self.committed: dict[str, tuple[str, int]] = {}  # id -> (who said so, height)
        self.refused: dict[str, int] = {}
        self.unreachable = 0
        self.seq = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _entry(self) -> tuple[str, dict[str, Any]]:
        from ledger.entry import Entry

        members = self.net.members
        author = self.rng.choice(members)
        self.seq += 1
        body = {
            "cert_id": f"CO-{author}-2026-{self.seq:06d}", "type": "origin",
            "issued_in": author, "origin": author,
            "destination": self.rng.choice([m for m in members if m != author]),
            "holder": "Chaos Test Exporters Ltd.", "hs_codes": ["851712"],
            "valid_from": 1_767_225_600_000, "valid_until": FAR,
            "document_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        }  # fmt: skip
        entry = Entry(CHAIN_ID, "cert.issue", author, time.time_ns() // 10**6, body)
        signed = entry.sign(self.keys[author])
        return signed.id_hex, signed.to_json()

    def _post(self, entry: dict[str, Any]) -> tuple[str, int, Any] | None:
        node = self.net.nodes[self.rng.choice(self.net.members)]
        try:
            code, doc = http("POST", node.url + "/v1/entries", entry, token=node.token,
                             timeout=2.0)  # fmt: skip
        except (OSError, ValueError):
            self.unreachable += 1
            return None
        return node.member_id, code, doc

    def _run(self) -> None:
        last_poll = time.monotonic()
        while not self.stop.is_set():
            entry_id, entry = self._entry()
            answer = self._post(entry)
            now = time.monotonic()
            if answer is not None:
                _, code, doc = answer
                if code == 202:
                    self.accepted[entry_id] = Pending(entry, now, now)
                else:
                    reason = doc.get("code", str(code)) if isinstance(doc, dict) else str(code)
                    self.refused[reason] = self.refused.get(reason, 0) + 1
            if now - last_poll > 1.0:
                self.poll()
                last_poll = now
            self.stop.wait(1 / self.rate)

    def poll(self, resubmit_after: float = 8.0) -> None:
        """Ask a random node about pending entries; post again those pending long."""
        pending = [i for i in self.accepted if i not in self.committed]
        node = self.net.nodes[self.rng.choice(self.net.members)]
        now = time.monotonic()
        for entry_id in pending[:200]:
            try:
                code, doc = http("GET", f"{node.url}/v1/entries/{entry_id}", timeout=1.0)
            except (OSError, ValueError):
                return
            if code == 200 and doc.get("status") == "committed":
                self.committed[entry_id] = (node.member_id, int(doc["height"]))
            elif now - self.accepted[entry_id].last_post > resubmit_after:
                # Pending or unknown here: the node it went to may have died with it.
                item = self.accepted[entry_id]
                item.last_post, item.posts = now, item.posts + 1
                self._post(item.entry)

    def start(self) -> None:
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(30)


# -- the campaign ---------------------------------------------------------------------


@dataclass
class Tally:
    kills: int = 0
    partitions: int = 0
    disk_full: int = 0
    disk_full_exits: int = 0
    pauses: int = 0
    slow: int = 0
    wipes: int = 0
    kill_all: int = 0


def say(net: Network, text: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {text}"
    print(line, flush=True)
    with net.log.open("a") as handle:
        handle.write(line + "\n")


def apply(net: Network, fault: Fault, tally: Tally) -> None:
    """Inject ``fault``, hold it, heal it; every node the schedule took down comes back."""
    kind, targets = fault.kind, list(fault.targets)
    if kind in ("kill", "kill_f", "kill_all"):
        net.kill(targets)
        tally.kills += len(targets)
        tally.kill_all += kind == "kill_all"
        time.sleep(fault.hold)
        net.start(targets)
    elif kind == "pause":
        net.pause(targets[0], True)
        tally.pauses += 1
        time.sleep(fault.hold)
        net.pause(targets[0], False)
    elif kind == "partition":
        net.proxies.partition(targets)
        tally.partitions += 1
        time.sleep(fault.hold)
        net.proxies.heal()
    elif kind == "slow":
        net.proxies.slow(targets[0], fault.delay_ms)
        tally.slow += 1
        time.sleep(fault.hold)
        net.proxies.heal()
    elif kind == "disk_full":
        m = targets[0]
        # A node that stops on a full disk does what it should; it is restarted after.
        net.nodes[m].expected_exit = True
        written = net.fill_disk(m)
        tally.disk_full += 1
        time.sleep(fault.hold)
        node = net.nodes[m]
        exited = not node.running
        net.free_disk(m)
        if exited:
            tally.disk_full_exits += 1
            say(net, f"  {m} stopped on the full disk ({written} B filler): {node.log_tail(2)}")
            net.start([m])
        else:
            node.expected_exit = False
    elif kind == "wipe":
        m = targets[0]
        net.kill([m])
        tally.kills += 1
        tally.wipes += 1
        net.wipe(m)
        time.sleep(fault.hold)
        net.start([m])
    else:
        raise ChaosError(f"unknown fault {kind}")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def run(args: argparse.Namespace) -> int:
    seconds = args.minutes * 60
    members = list(CODES[: args.validators + args.followers])
    validators = members[: args.validators]
    kinds = args.kinds.split(",") if args.kinds else list(KINDS)
    replay = (f"python scripts/chaos.py --seed {args.seed} --minutes {args.minutes:g} "
              f"--validators {args.validators} --followers {args.followers}"
              + (f" --kinds {args.kinds}" if args.kinds else ""))  # fmt: skip
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    tmpfs = tmpfs_available(root)
    if not tmpfs:
        kinds = [k for k in kinds if k != "disk_full"]
    schedule = plan(args.seed, seconds, members, validators, kinds)
    print(f"chaos: seed {args.seed}, {len(schedule)} faults over {seconds:g} s on "
          f"{len(validators)} validators + {args.followers} followers in {root}")  # fmt: skip
    if not tmpfs:
        print("  no tmpfs can be mounted here: the disk_full faults are left out")
    for fault in schedule:
        print("  " + fault.describe())
    counts = {k: sum(1 for f in schedule if f.kind == k) for k in KINDS}
    print("  schedule: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v), flush=True)
    net = Network(root, args.validators, args.followers, tmpfs=tmpfs)
    checks: list[Check] = []
    tally = Tally()
    client: Client | None = None
    try:
        net.create()
        net.start(members)
        client = Client(net, args.seed, args.rate)
        client.start()
        start = time.monotonic()
        for i, fault in enumerate(schedule):
            wait = start + fault.at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            say(net, f"fault {i + 1}/{len(schedule)}: {fault.describe()}  "
                     f"heights {net.heights()}")  # fmt: skip
            apply(net, fault, tally)
            net.check_exits()
        checks += finish(net, client, args.liveness)
    except ChaosError as exc:
        checks.append(Check("harness", False, str(exc)))
    finally:
        if client is not None:
            client.halt()
        codes = net.stop_all() if net.nodes else {}
        net.check_exits()
        if net.genesis is not None and net.nodes:
            checks += after_stop(net, client, codes)
        net.close()
        checks.append(nothing_left(net, root))
    print(f"faults injected: {tally.kills} kill -9 ({tally.kill_all} of every node at once, "
          f"{tally.wipes} with the data wiped), {tally.partitions} partitions, {tally.slow} slow "
          f"links, {tally.pauses} pauses, {tally.disk_full} full disks "
          f"({tally.disk_full_exits} stopped the node)")  # fmt: skip
    if client is not None:
        print(f"client: {len(client.accepted)} entries answered 202, {len(client.committed)} "
              f"reported committed, refused {client.refused or 'none'}, "
              f"{client.unreachable} posts found no node")  # fmt: skip
    failed = [c for c in checks if not c.ok]
    for check in checks:
        print(f"{'PASS' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    if failed:
        print(f"seed {args.seed} FAILED; replay: {replay} (network kept in {root})")
    else:
        print(f"seed {args.seed} passed; replay: {replay}")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def finish(net: Network, client: Client, bound: float) -> list[Check]:
    """Heal everything, then judge liveness and wait for the client's entries."""
    checks = []
    net.proxies.heal()
    for m, node in net.nodes.items():
        if node.paused:
            net.pause(m, False)
    down = [m for m, n in net.nodes.items() if not n.running]
    if down:
        net.start(down)
    healed = time.monotonic()
    top = max(net.heights().values())
    deadline = healed + bound
    heights = net.heights()
    while min(heights.values()) < top + 2 and time.monotonic() < deadline:
        time.sleep(0.25)
        heights = net.heights()
    took = time.monotonic() - healed
    live = min(heights.values()) >= top + 2
    checks.append(Check(
        "liveness", live,
        f"every node past height {top + 1} {took:.1f} s after the last fault healed "
        f"(bound {bound:g} s): {heights}",
    ))  # fmt: skip
    client.halt()
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        client.poll(resubmit_after=4.0)
        if len(client.committed) == len(client.accepted):
            break
        time.sleep(0.5)
    # Every node at least as far as the highest reported commit, so stores can be compared.
    need = max((h for _, h in client.committed.values()), default=0)
    deadline = time.monotonic() + bound
    while min(net.heights().values()) < need and time.monotonic() < deadline:
        time.sleep(0.25)
    return checks


def after_stop(net: Network, client: Client | None, codes: dict[str, int | None]) -> list[Check]:
    from ledger.store import Store

    checks: list[Check] = []
    unexpected = {m: n.unexpected for m, n in net.nodes.items() if n.unexpected}
    checks.append(Check(
        "no unscheduled exit", not unexpected,
        "every node exited only when the schedule stopped it (SIGTERM at the end: "
        f"{codes})" if not unexpected else f"{unexpected}",
    ))  # fmt: skip
    stores = {}
    for m, node in net.nodes.items():
        try:
            stores[m] = Store.open(node.data / "ledger", net.genesis)
        except Exception as exc:  # any failure to reopen a store is the finding
            checks.append(Check("stores reopen", False, f"{m}: {exc!r}"))
    try:
        checks += compare_stores(stores, client)
        checks.append(signing_records(net, stores))
    finally:
        for store in stores.values():
            store.close()
    logs = [n.log_path for n in net.nodes.values() if n.log_path.exists()]
    checks.append(double_signs(log.read_text(errors="replace") for log in logs))
    return checks


def compare_stores(stores: dict[str, Any], client: Client | None) -> list[Check]:
    """Every common height agrees; every reported or accepted entry is on every node."""
    checks: list[Check] = []
    if not stores:
        return checks
    heights = {m: s.height for m, s in stores.items()}
    common = min(heights.values())
    differ = []
    for h in range(1, common + 1):
        seen = {}
        for m, store in stores.items():
            header = store.get_header(h)
            seen[m] = (header.hash(), header.log_root, header.state_root) if header else None
        if len(set(seen.values())) != 1:
            differ.append((h, {m: v and v[0].hex()[:12] for m, v in seen.items()}))
    checks.append(Check(
        "one chain", not differ,
        f"head hash, log_root and state_root agree at all {common} common heights "
        f"(heights {heights})"
        if not differ else f"{len(differ)} heights differ, first {differ[:3]}",
    ))  # fmt: skip
    if client is None:
        return checks
    for name, ids in (("reported committed", list(client.committed)),
                      ("answered 202", list(client.accepted))):  # fmt: skip
        missing = []
        for entry_id in ids:
            places = {m: s.entry_location(bytes.fromhex(entry_id)) for m, s in stores.items()}
            where = {loc.height if loc else None for loc in places.values()}
            if None in where or len(where) != 1:
                missing.append(
                    (entry_id[:12], {m: loc and loc.height for m, loc in places.items()})
                )
        checks.append(Check(
            f"every entry {name} is on every node", not missing,
            f"{len(ids)} entries, each at one height on all {len(stores)} nodes"
            if not missing else f"{len(missing)} of {len(ids)} not: {missing[:5]}",
        ))  # fmt: skip
    return checks


# What a node received: a signature that reached a peer (one signed and held back, or
# sent to nobody, can incriminate no one).
_SIGNED = re.compile(
    r"<- recv (proposal|prevote|precommit) ([A-Z][A-Z0-9-]*) h(\d+)/r(\d+) ([0-9a-f]{8}|nil)\b"
)


def double_signs(logs: Iterable[str], records: Iterable[tuple[str, str, int, int, str]] = ()
                 ) -> Check:  # fmt: skip
    """No (signer, type, height, round) with two different blocks among the messages
    any node received (its debug log) and the signing records; no evidence reported."""
    seen: dict[tuple[str, str, int, int], set[str]] = {}
    evidence = 0
    count = 0
    for text in logs:
        evidence += text.count("equivocation evidence")
        for kind, sender, h, r, block in _SIGNED.findall(text):
            seen.setdefault((sender, kind, int(h), int(r)), set()).add(block)
            count += 1
    for sender, kind, h, r, block in records:
        seen.setdefault((sender, kind, h, r), set()).add(block)
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    ok = not twice and evidence == 0
    return Check(
        "no double signing", ok,
        f"{len(seen)} (signer, type, height, round) seen in {count} logged messages, each "
        "with one block; no equivocation evidence"
        if ok else f"{len(twice)} conflicts, e.g. {sorted(twice.items())[:3]}; "
        f"{evidence} equivocation evidence lines",
    )  # fmt: skip


def signing_records(net: Network, stores: dict[str, Any]) -> Check:
    """Each validator's durable signing record names only what its logs also show."""
    from node.consensus.messages import SignedProposal, decode_message
    from node.consensus.signing_state import SigningState
    from node.daemon.consensus_host import SIGNING_STATE_KEY

    records = []
    for store in stores.values():
        raw = store.get_raw(SIGNING_STATE_KEY)
        if raw is None:
            continue
        for wire in SigningState.decode(raw).signed:
            message = decode_message(wire)
            if isinstance(message, SignedProposal):
                p = message.proposal
                records.append((message.sender, "proposal", p.height, p.round, p.block.hex()[:8]))
            else:
                v = message.vote
                block = v.block.hex()[:8] if v.block else "nil"
                records.append((message.sender, v.type, v.height, v.round, block))
    logs = [n.log_path.read_text(errors="replace") for n in net.nodes.values()
            if n.log_path.exists()]  # fmt: skip
    check = double_signs(logs, records)
    return Check(
        "signing records agree with the logs",
        check.ok,
        f"{len(records)} signed messages in the records; " + check.detail,
    )


def nothing_left(net: Network, root: Path) -> Check:
    running = [m for m, n in net.nodes.items() if n.proc is not None and n.proc.poll() is None]
    strays = [p for p in _pids() if str(root) in _cmdline(p) and "customs-node" in _cmdline(p)]
    mounts = [line for line in Path("/proc/mounts").read_text().splitlines() if str(root) in line]
    ok = not running and not strays and not mounts and not net.proxies.listening()
    return Check("nothing left running", ok,
                 "no node process, proxy or tmpfs remains" if ok else
                 f"running {running}, processes {strays}, mounts {mounts}")  # fmt: skip


def _pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--minutes", type=float, default=2.0, help="length of the schedule")
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--followers", type=int, default=1, help="members that do not vote")
    parser.add_argument("--kinds", default="", help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--rate", type=float, default=5.0, help="entries per second")
    parser.add_argument("--liveness", type=float, default=60.0,
                        help="seconds allowed for progress after the last fault heals")  # fmt: skip
    parser.add_argument("--dir", default="", help="where to put the network (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the network's files on success")
    args = parser.parse_args(argv)
    unknown = set(args.kinds.split(",")) - set(KINDS) if args.kinds else set()
    if unknown:
        parser.error(f"--kinds: unknown {sorted(unknown)}")
    return run(args)


if __name__ == "__main__":
    os.environ.setdefault("CUSTOMS_LEDGER_PURE", "1")
    sys.exit(main())
