"""``customs submit``: one entry, signed by a node (API token) or here (a member key),
posted, and with ``--wait`` followed until it is committed or refused.

A 202 is only "pending": a node killed before it gossips an entry forgets it. So the
client keeps the signed entry (``/v1/submit`` answers with it) and, when every node it
asks has forgotten the entry, posts the very same bytes again to the next node: one id,
so it can never be committed twice.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import contracts
from contracts import Rejection
from ledger.entry import Entry, SignedEntry, entry_from_json
from ledger.errors import EntryError, KeyFileError
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from node.client.errors import NoAnswer, Refused, UsageError
from node.client.files import read_file
from node.client.transport import NodeClient, NodeRefusal, NodeUnavailable

__all__ = ["Outcome", "build_body", "read_token", "sign_locally", "submit"]

_MAX_BODY_BYTES = 1024 * 1024
_MAX_TOKEN_BYTES = 4096
_MAX_KEY_BYTES = 64 * 1024
_POLL_S = 0.2
# Consecutive polls in which no node knows the entry before it is posted again.
_FORGOTTEN_POLLS = 3


@dataclass(frozen=True, slots=True)
class Outcome:
    entry_id: str
    status: str  # "pending" (not waited for) or "committed"
    node: str
    height: int | None = None
    block_time: int | None = None
    reposts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "submit",
            "exit_code": 0,
            "id": self.entry_id,
            "status": self.status,
            "node": self.node,
            "height": self.height,
            "block_time": self.block_time,
            "reposts": self.reposts,
        }


def build_body(body_file: str | None, settings: Sequence[str]) -> dict[str, Any]:
    """The entry body from a JSON file ('-' is standard input) and/or ``key=value``
    settings; a dotted key sets a nested field, a value that parses as JSON is taken as
    JSON (``hs_codes=["851712"]``, ``valid_from=1767225600000``), else as a string."""
    body: dict[str, Any] = {}
    if body_file is not None:
        body = _read_json_object(body_file)
    for setting in settings:
        key, sep, raw = setting.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {setting!r}: expected key=value")
        try:
            value = json.loads(raw, parse_constant=_no_constant, parse_float=_no_float)
        except ValueError:
            value = raw
        target = body
        *parents, leaf = key.split(".")
        for part in parents:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise UsageError(f"--set {key}: {part} is not an object")
            target = child
        target[leaf] = value
    if not body:
        raise UsageError("an entry needs a body: give --body FILE or --set key=value")
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _no_float(text: str) -> Any:
    raise ValueError(text)


def _read_json_object(name: str) -> dict[str, Any]:
    if name == "-":
        data = sys.stdin.buffer.read(_MAX_BODY_BYTES + 1)
        if len(data) > _MAX_BODY_BYTES:
            raise UsageError(f"standard input: the body is larger than {_MAX_BODY_BYTES} bytes")
    else:
        data = read_file(Path(name), _MAX_BODY_BYTES, "body")
    try:
        body = json.loads(data, parse_constant=_no_constant, parse_float=_no_float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{name}: not JSON without floats: {exc}") from exc
    if not isinstance(body, dict):
        raise UsageError(f"{name}: the body must be a JSON object")
    return body


def read_token(path: Path) -> str:
    data = read_file(path, _MAX_TOKEN_BYTES, "API token")
    token = data.strip()
    if not token or not token.isascii() or b" " in token:
        # The token's bytes are never shown: only that the file does not hold one.
        raise UsageError(f"{path}: does not hold an API token")
    return token.decode()


def sign_locally(
    key_path: Path, genesis: Genesis, kind: str, body: dict[str, Any], now: int
) -> SignedEntry:
    """Sign as the member whose genesis key matches the key file, and check the entry's
    stateless rules here, so a mistake is reported before anything is sent."""
    data = read_file(key_path, _MAX_KEY_BYTES, "key")
    try:
        key = SigningKey.from_pem(data)
    except KeyFileError as exc:
        raise UsageError(f"{key_path}: {exc}") from exc
    public = key.public_key
    author = next((m for m in genesis.members if m.public_key == public), None)
    if author is None:
        raise UsageError(f"{key_path}: the key belongs to no member of {genesis.chain_id}")
    try:
        signed = Entry(genesis.chain_id, kind, author.id, now, body).sign(key)
        return contracts.check_entry_stateless(signed, genesis)
    except EntryError as exc:
        raise Refused(exc.code, exc.reason) from exc
    except Rejection as exc:
        raise Refused(exc.code, exc.message) from exc


def submit(
    nodes: Sequence[NodeClient],
    genesis: Genesis | None,
    *,
    kind: str,
    signed: SignedEntry | None,
    body: dict[str, Any],
    wait_s: float | None,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Post (``signed`` as it is, else ``{kind, body}`` for the node to sign) to the first
    node that takes it; with ``wait_s``, follow it until committed or refused."""
    if signed is None:
        node, signed = _post_for_signing(nodes, kind, body, genesis)
    else:
        node = _post_signed(nodes, signed, 0)
    if wait_s is None:
        return Outcome(signed.id_hex, "pending", node.url)
    return _wait(nodes, signed, node, wait_s, clock)


def _post_for_signing(
    nodes: Sequence[NodeClient], kind: str, body: dict[str, Any], genesis: Genesis | None
) -> tuple[NodeClient, SignedEntry]:
    failures = []
    for node in nodes:
        try:
            answer = node.post_json("/v1/submit", {"kind": kind, "body": body})
        except NodeUnavailable as exc:
            failures.append(f"{node.url}: {exc.reason}")
            continue
        except NodeRefusal as exc:
            raise _refusal(exc) from exc
        limit = genesis.params.max_entry_bytes if genesis is not None else 1 << 20
        try:
            signed = entry_from_json(answer.get("entry"), limit)
        except (EntryError, AttributeError) as exc:
            raise NoAnswer(f"{node.url} accepted the entry but did not return it: {exc}") from exc
        if signed.id_hex != answer.get("id"):
            raise NoAnswer(f"{node.url} returned an entry whose id is not the one it named")
        return node, signed
    raise NoAnswer("no node took the entry: " + "; ".join(failures))


def _post_signed(nodes: Sequence[NodeClient], signed: SignedEntry, start: int) -> NodeClient:
    failures = []
    for offset in range(len(nodes)):
        node = nodes[(start + offset) % len(nodes)]
        try:
            node.post_json("/v1/entries", signed.to_json())
            return node
        except NodeUnavailable as exc:
            failures.append(f"{node.url}: {exc.reason}")
        except NodeRefusal as exc:
            if exc.status in (401, 429, 503):  # this node will not take it now; another may
                failures.append(f"{node.url}: {exc.code}: {exc.message}")
                continue
            raise _refusal(exc) from exc
    raise NoAnswer("no node took the entry: " + "; ".join(failures))


def _refusal(exc: NodeRefusal) -> Exception:
    if exc.status == 401:
        return UsageError(f"{exc.url} refused the API token: {exc.message}")
    return Refused(exc.code, exc.message)


def _wait(
    nodes: Sequence[NodeClient],
    signed: SignedEntry,
    posted_to: NodeClient,
    wait_s: float,
    clock: Callable[[], float],
) -> Outcome:
    deadline = clock() + wait_s
    forgotten = 0
    reposts = 0
    path = f"/v1/entries/{signed.id_hex}"
    while True:
        known = forgot = False
        for node in nodes:
            try:
                status = node.get_json(path)
            except NodeRefusal as exc:
                forgot = forgot or exc.status == 404
                continue
            except NodeUnavailable:
                continue
            known = True
            if not isinstance(status, dict):
                continue
            if status.get("status") == "committed":
                return Outcome(
                    signed.id_hex,
                    "committed",
                    node.url,
                    status.get("height"),
                    status.get("block_time"),
                    reposts,
                )
            if status.get("status") == "rejected":
                raise Refused(str(status.get("code")), str(status.get("message")))
        forgotten = forgotten + 1 if forgot and not known else 0
        if forgotten >= _FORGOTTEN_POLLS:
            # Every node asked has forgotten it (a node killed before gossiping): post
            # the same signed bytes to the next node.
            start = (nodes.index(posted_to) + 1) % len(nodes)
            posted_to = _post_signed(nodes, signed, start)
            reposts += 1
            forgotten = 0
        if clock() >= deadline:
            raise NoAnswer(
                f"entry {signed.id_hex} was not committed within {wait_s:g} s; it may still "
                f"be: ask again with GET {path}"
            )
        time.sleep(_POLL_S)
