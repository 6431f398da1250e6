"""A local network of real ``customs-node run`` processes, for tests and the benchmark.

Set-up is ``customs-node testnet`` in-process (the same ``node.admin.cli.main`` the
installed script calls), the command operators use for a local network; every node then
runs as its own OS process in its own session, so ``kill -9`` hits exactly that node and
``close`` can kill a whole process group. ``Cluster`` is a context manager and ``close``
is idempotent: whatever happens in a test, no process is left behind.

``testnet`` draws the ports from the kernel (bind to port 0) and the genesis names each
member's endpoint, so nodes find one another through genesis like a real deployment.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ledger.genesis import Genesis
from node.admin.cli import main as node_main
from node.daemon.config import Limits, Timeouts, load_config
from node.daemon.key_files import load_genesis
from node.daemon.tls import client_context

__all__ = [
    "FAST_TIMEOUTS",
    "Cluster",
    "ClusterError",
    "HttpReply",
    "NodeProcess",
    "free_port",
    "http",
]

SCRIPT = Path(sys.executable).parent / "customs-node"
CHAIN_ID = "customs-net-1"
# Short consensus timeouts and reconnect delays keep process tests quick on one machine.
FAST_TIMEOUTS: dict[str, int] = {
    "propose_ms": 400,
    "propose_delta_ms": 200,
    "prevote_ms": 300,
    "prevote_delta_ms": 200,
    "precommit_ms": 300,
    "precommit_delta_ms": 200,
    "reconnect_min_ms": 50,
    "reconnect_max_ms": 500,
}
# A short heartbeat: the fault tests watch heights grow on an idle network, and each of
# those heights still starts held and is woken by the heartbeat (or an entry, or a peer).
FAST_PARAMS: dict[str, int] = {"block_interval_ms": 150, "empty_block_interval_ms": 300}


class ClusterError(Exception):
    """The harness could not set up, start or observe the network as asked."""


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str | None = None,
    raw: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpReply:
    """One HTTP request; any status is returned, not raised (tests assert on it)."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    # The harness reads its own nodes: TLS without pinning (the CLI's pinning is tested
    # on its own, in test_tls).
    context = client_context() if url.startswith("https://") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return HttpReply(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as exc:
        return HttpReply(exc.code, exc.read(), dict(exc.headers))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class NodeProcess:
    """One member's directory and, while running, its process."""

    member_id: str
    root: Path
    port: int
    public_key: str
    token: str
    tls: bool = False
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log_handle: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.root / "node.toml"

    @property
    def log_path(self) -> Path:
        return self.root / "node.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, **kwargs: Any) -> HttpReply:
        return http("GET", self.url + path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> HttpReply:
        kwargs.setdefault("token", self.token)
        return http("POST", self.url + path, body, **kwargs)

    def status(self) -> dict[str, Any] | None:
        """``/v1/status``, or None while the node is not answering."""
        try:
            reply = self.get("/v1/status", timeout=2.0)
        except (OSError, urllib.error.URLError):
            return None
        return reply.json() if reply.status == 200 else None

    def height(self) -> int:
        status = self.status()
        return -1 if status is None else int(status["height"])


class Cluster:
    """``ids`` members (all validators unless ``validators`` says otherwise) under ``root``."""

    def __init__(
        self,
        root: Path,
        ids: Sequence[str],
        *,
        validators: Iterable[str] | None = None,
        params: Mapping[str, int] | None = None,
        settings: Mapping[str, int | str] | None = None,
        chain_id: str = CHAIN_ID,
        tls: bool = False,
    ) -> None:
        self.root = root
        self.chain_id = chain_id
        self.tls = tls
        voting = set(ids if validators is None else validators)
        self.nodes: dict[str, NodeProcess] = {}
        self._closed = False
        # CUSTOMS_TEST_LOG_LEVEL=debug keeps every consensus step in the nodes' logs.
        level = os.environ.get("CUSTOMS_TEST_LOG_LEVEL", "info")
        overrides = {**FAST_TIMEOUTS, "level": level, **(settings or {})}
        self.genesis = self._testnet(ids, voting, {**FAST_PARAMS, **(params or {})}, overrides)
        for member_id in ids:
            self.nodes[member_id] = self._node(member_id)

    # ---- set-up ---------------------------------------------------------------------

    def _testnet(
        self,
        ids: Sequence[str],
        voting: set[str],
        params: Mapping[str, int],
        settings: Mapping[str, int | str],
    ) -> Genesis:
        members = [
            {
                "id": member_id,
                "name": f"{member_id} Customs",
                "jurisdictions": [member_id[:2]],
                "roles": ["issuer", "customs", *(["validator"] if member_id in voting else [])],
            }
            for member_id in ids
        ]
        # The members file lives outside root: testnet wants root absent or empty.
        with tempfile.TemporaryDirectory(prefix="cluster-members-") as tmp:
            members_file = Path(tmp) / "members.json"
            members_file.write_text(json.dumps(members))
            _quiet_cli(
                [
                    "testnet",
                    *("--dir", str(self.root), "--members", str(members_file)),
                    *("--chain-id", self.chain_id),
                    *(["--tls"] if self.tls else []),
                    *(f"--param={key}={value}" for key, value in params.items()),
                    *(f"--set={_dotted(key)}={value}" for key, value in settings.items()),
                ]
            )
        return load_genesis(self.root / "genesis.json")

    def _node(self, member_id: str) -> NodeProcess:
        node_dir = self.root / member_id
        member = self.genesis.member(member_id)
        assert member is not None  # testnet wrote it into genesis
        port = load_config(node_dir / "node.toml").listen_port
        token = (node_dir / "api.token").read_text().strip()
        return NodeProcess(member_id, node_dir, port, member.public_key.hex, token, tls=self.tls)

    # ---- processes ------------------------------------------------------------------

    def __getitem__(self, member_id: str) -> NodeProcess:
        return self.nodes[member_id]

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, *ids: str) -> None:
        for member_id in ids or tuple(self.nodes):
            node = self.nodes[member_id]
            if node.running:
                raise ClusterError(f"{member_id} is already running")
            node._log_handle = node.log_path.open("ab")
            node.proc = subprocess.Popen(
                [str(SCRIPT), "run", "--config", str(node.config)],
                stdin=subprocess.DEVNULL,
                stdout=node._log_handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            node.starts += 1
        self.wait_until(
            lambda: all(self.nodes[i].status() is not None for i in ids or self.nodes),
            what=f"nodes {list(ids or self.nodes)} to serve HTTP",
        )

    def stop(self, member_id: str, timeout: float = 20.0) -> int:
        """SIGTERM and wait for a clean exit; return the exit code."""
        return self._signal(member_id, signal.SIGTERM, timeout)

    def kill(self, member_id: str) -> int:
        """SIGKILL the node's process group: a crash, with no chance to clean up."""
        return self._signal(member_id, signal.SIGKILL, 20.0)

    def _signal(self, member_id: str, sig: signal.Signals, timeout: float) -> int:
        node = self.nodes[member_id]
        if node.proc is None:
            raise ClusterError(f"{member_id} was never started")
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGKILL:
                os.killpg(node.proc.pid, sig)
            else:
                node.proc.send_signal(sig)
        try:
            code = node.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.proc.pid, signal.SIGKILL)
            node.proc.wait()
            raise ClusterError(
                f"{member_id} did not exit within {timeout} s of {sig.name}"
            ) from exc
        finally:
            if node._log_handle is not None:
                node._log_handle.close()
                node._log_handle = None
        return code

    def close(self) -> None:
        """Kill every process that is still running; safe to call any number of times."""
        if self._closed:
            return
        self._closed = True
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGKILL)
            if node.proc is not None:
                node.proc.wait()
            if node._log_handle is not None:
                node._log_handle.close()
                node._log_handle = None

    # ---- observing ------------------------------------------------------------------

    def running(self) -> list[NodeProcess]:
        return [n for n in self.nodes.values() if n.running]

    def wait_until(self, condition: Callable[[], bool], *, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for node in self.nodes.values():
                if node.proc is not None and node.proc.poll() not in (None, -9, 0, -15):
                    raise ClusterError(
                        f"{node.member_id} exited with {node.proc.returncode} while waiting "
                        f"for {what}; log tail:\n{node.log_text()[-3000:]}"
                    )
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"timed out after {timeout} s waiting for {what}; {self.describe()}"
                )
            time.sleep(0.1)

    def describe(self) -> str:
        """Each running node's height, round and mempool size, for failure messages."""
        parts = []
        for node in self.running():
            status = node.status()
            parts.append(
                f"{node.member_id}: down"
                if status is None
                else f"{node.member_id}: h={status['height']} r={status['round']} "
                f"mempool={status['mempool']} syncing={status['syncing']}"
            )
        return "; ".join(parts)

    def wait_height(
        self, height: int, ids: Iterable[str] | None = None, timeout: float = 60
    ) -> None:
        chosen = list(ids if ids is not None else (n.member_id for n in self.running()))
        self.wait_until(
            lambda: all(self.nodes[i].height() >= height for i in chosen),
            what=f"{chosen} to reach height {height}",
            timeout=timeout,
        )

    def wait_committed(
        self, entry_ids: Iterable[str], ids: Iterable[str] | None = None, timeout: float = 60
    ) -> None:
        """Wait until every entry is committed on every chosen node."""
        pending = {
            (i, e) for i in (ids or [n.member_id for n in self.running()]) for e in entry_ids
        }

        def done() -> bool:
            for member_id, entry_id in list(pending):
                reply = self.nodes[member_id].get(f"/v1/entries/{entry_id}")
                if reply.status == 200 and reply.json()["status"] == "committed":
                    pending.discard((member_id, entry_id))
                elif reply.status == 200 and reply.json()["status"] == "rejected":
                    raise ClusterError(f"{entry_id} rejected on {member_id}: {reply.json()}")
                else:
                    return False
            return True

        self.wait_until(done, what=f"{len(pending)} entry/node pairs to commit", timeout=timeout)

    def block(self, member_id: str, height: int) -> dict[str, Any]:
        reply = self.nodes[member_id].get(f"/v1/blocks/{height}")
        if reply.status != 200:
            raise ClusterError(f"{member_id} has no block {height}: {reply.status}")
        block: dict[str, Any] = reply.json()
        return block


# Cluster's settings name a key alone ("propose_ms", "level"): limits and timeouts have
# distinct names, so each belongs to one node.toml table.
_TABLE_OF: dict[str, str] = {
    **{f.name: "limits" for f in fields(Limits)},
    **{f.name: "timeouts" for f in fields(Timeouts)},
    "format": "log",
    "level": "log",
}


def _dotted(key: str) -> str:
    if "." in key:
        return key
    if key not in _TABLE_OF:
        raise ClusterError(f"setting {key!r} is not a node.toml limit, timeout or log key")
    return f"{_TABLE_OF[key]}.{key}"


def _quiet_cli(argv: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = node_main(argv)
    if code != 0:
        raise ClusterError(f"customs-node {argv[0]} failed ({code}): {err.getvalue().strip()}")
