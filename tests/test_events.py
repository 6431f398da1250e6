"""GET /v1/events on real node processes: history then live, filters, resuming after a
client disconnect and a node restart with no gap and no duplicate, and a client that
stops reading dropped with a reason while the network goes on committing."""

from __future__ import annotations

import http.client
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import samples
from tests.cluster import Cluster, NodeProcess

FOUR = ["CN", "NL", "DE", "SG"]
EVENT_BUFFER = 64
MAX_STREAMS = 16  # above what the other tests hold open, closing streams in quick succession
_serial = itertools.count(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(
        tmp_path_factory.mktemp("events") / "net",
        FOUR,
        settings={"event_buffer": EVENT_BUFFER, "max_event_streams": MAX_STREAMS},
    ) as running:
        running.start()
        running.wait_height(1)
        yield running


class Sse:
    """A minimal Server-Sent Events reader over http.client (chunked transfer decoded)."""

    def __init__(self, node: NodeProcess, query: str = "", last_event_id: int | None = None):
        self.conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        self.conn.request("GET", "/v1/events" + query, headers=headers)
        self.response = self.conn.getresponse()

    def next(self) -> tuple[str, dict[str, Any]] | None:
        """The next event (name, data), or None when the node closed the stream."""
        name, data, event_id = "message", None, None
        while True:
            line = self.response.readline()
            if not line:
                return None
            text = line.decode().rstrip("\n")
            if not text:
                if data is not None:
                    doc = json.loads(data)
                    if event_id is not None:
                        assert int(event_id) == doc["log_index"]
                    return name, doc
                continue
            field, _, value = text.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data = value
            elif field == "id":
                event_id = value

    def close(self) -> None:
        self.conn.close()


def submit(node: NodeProcess, kind: str, body: dict[str, Any]) -> str:
    reply = node.post("/v1/submit", {"kind": kind, "body": body})
    assert reply.status == 202, reply.body
    entry_id: str = reply.json()["id"]
    return entry_id


def cert(node: NodeProcess, destination: str = "DE") -> str:
    country = node.member_id
    body = samples.cert_issue(f"{country}-EV-{next(_serial):06d}", country, destination=destination)
    return submit(node, "cert.issue", body)


def log_size(node: NodeProcess) -> int:
    head = node.get(f"/v1/blocks/{node.height()}").json()["header"]
    return int(head["log_size"])


def read_until(stream: Sse, want: set[str], timeout: float = 60) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not want <= {e["id"] for e in got}:
        assert time.monotonic() < deadline, f"missing {len(want - {e['id'] for e in got})}"
        event = stream.next()
        assert event is not None, "the stream ended early"
        name, data = event
        assert name == "entry", data
        got.append(data)
    return got


def test_history_then_live_in_log_order_with_height_and_block_time(cluster: Cluster) -> None:
    cn = cluster["CN"]
    start = log_size(cn)
    before = [cert(cn) for _ in range(5)]
    cluster.wait_committed(before, ["CN"])
    stream = Sse(cn, f"?from={start}")
    try:
        got = read_until(stream, set(before))
        after = [cert(cluster["DE"]) for _ in range(3)]  # committed while streaming: live
        got += read_until(stream, set(after))
    finally:
        stream.close()
    indexes = [e["log_index"] for e in got]
    assert indexes == list(range(start, start + len(got)))
    for event in got:
        status = cn.get(f"/v1/entries/{event['id']}").json()
        assert status["log_index"] == event["log_index"]
        assert status["height"] == event["height"]
        assert status["block_time"] == event["block_time"]
        assert event["entry"]["kind"] == "cert.issue" and len(event["sig"]) == 128


def test_filters_by_kind_author_country_locode_and_subject(cluster: Cluster) -> None:
    cn, de = cluster["CN"], cluster["DE"]
    start = log_size(cn)
    ucr = f"6CN{next(_serial):08d}"
    cn_sg = cert(cn, destination="SG")
    de_cert = cert(de, destination="NL")
    declare = submit(cn, "shipment.declare", samples.declare(ucr, destination_port="DEHAM"))
    cluster.wait_committed([cn_sg, de_cert, declare], ["CN"])
    moved = []
    for step in ("loaded", "departed"):
        moved.append(submit(cn, "shipment.event", samples.event(ucr, step, "CNSHA")))
        cluster.wait_committed(moved[-1:], ["CN"])
    arrived = submit(de, "shipment.event", samples.event(ucr, "arrived", "DEHAM"))
    cluster.wait_committed([arrived], ["CN"])
    ours = {cn_sg, de_cert, declare, arrived, *moved}
    cases = {
        "kind=shipment.declare": {declare},
        "kind=shipment.declare,shipment.event": {declare, arrived, *moved},
        "author=DE": {de_cert, arrived},
        "country=SG": {cn_sg},
        "locode=DEHAM": {declare, arrived},
        "locode=CNSHA&kind=shipment.event": set(moved),
        f"subject=shipment/{ucr}": {declare, arrived, *moved},
        "author=DE&locode=DEHAM": {arrived},
    }
    for query, expected in cases.items():
        stream = Sse(cn, f"?from={start}&{query}")
        try:
            got = read_until(stream, expected)
        finally:
            stream.close()
        ids = [e["id"] for e in got]
        # In log order, so anything wrongly matched before the last wanted one is here.
        assert len(ids) == len(set(ids)) and set(ids) & ours == expected, query
    reply = cn.get("/v1/events?country=XX")
    assert reply.status == 400 and reply.json()["code"] == "malformed"
    reply = cn.get("/v1/events?from=-1")
    assert reply.status == 400 and reply.json()["code"] == "malformed"


def test_resume_without_gap_across_a_client_disconnect_and_a_node_restart(
    cluster: Cluster,
) -> None:
    cn, de = cluster["CN"], cluster["DE"]
    submitted: list[str] = []
    stop = threading.Event()

    def feed() -> None:
        # Into DE, which stays up: the network commits while CN restarts.
        while not stop.is_set() and len(submitted) < 120:
            submitted.extend(cert(de) for _ in range(4))
            time.sleep(0.1)

    start = log_size(cn)
    feeder = threading.Thread(target=feed)
    feeder.start()
    got: list[dict[str, Any]] = []
    try:
        stream = Sse(cn, f"?from={start}")
        while len(got) < 20:
            event = stream.next()
            assert event is not None and event[0] == "entry"
            got.append(event[1])
        stream.close()  # the client goes away mid-stream
        stream = Sse(cn, "?from=0", last_event_id=got[-1]["log_index"])
        while len(got) < 50:
            event = stream.next()
            assert event is not None and event[0] == "entry"
            got.append(event[1])
        assert cluster.stop("CN") == 0
        # The node said why it closed the stream before it stopped.
        tail: list[tuple[str, dict[str, Any]]] = []
        while (event := stream.next()) is not None:
            tail.append(event)
        got += [data for name, data in tail if name == "entry"]
        assert tail and tail[-1][0] == "close" and tail[-1][1]["code"] == "node_stopping"
        stream.close()
        cluster.start("CN")
        stop.set()
        feeder.join()
        cluster.wait_committed(submitted, ["CN"])
        stream = Sse(cn, last_event_id=got[-1]["log_index"])
        try:
            got += read_until(stream, set(submitted) - {e["id"] for e in got})
        finally:
            stream.close()
    finally:
        stop.set()
        feeder.join()
    indexes = [e["log_index"] for e in got]
    assert indexes == list(range(start, start + len(got))), "a gap or a duplicate"
    assert set(submitted) <= {e["id"] for e in got}


def test_a_client_that_stops_reading_is_dropped_and_the_network_goes_on(
    cluster: Cluster,
) -> None:
    cn, nl = cluster["CN"], cluster["NL"]
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", cn.port))
    stalled.sendall(b"GET /v1/events HTTP/1.1\r\nHost: node\r\n\r\n")
    # Another stream on the same node, read promptly, is not affected.
    reader = Sse(cn)
    try:
        height = cn.height()
        submitted = []
        for _ in range(50):
            batch = [samples.cert_issue(f"NL-SLOW-{next(_serial):06d}", "NL") for _ in range(20)]
            for body in batch:
                submitted.append(submit(nl, "cert.issue", body))
            read_until(reader, set(submitted[-20:]))
            if closed_too_slow(cn) >= 1:
                break
        assert closed_too_slow(cn) == 1, "the stalled stream was never dropped"
        cluster.wait_committed(submitted)
        assert cn.height() > height and all(n.height() > height for n in cluster.running())
        later = cert(nl)
        read_until(reader, {later})
        # Now read what was buffered for the stalled client: its close event comes last.
        stalled.settimeout(30)
        data = b""
        while chunk := stalled.recv(65536):
            data += chunk
    finally:
        reader.close()
        stalled.close()
    found = re.search(rb"event: close\ndata: (\{.*?\})\n\n", data)
    assert found is not None, data[-500:]
    close = json.loads(found.group(1))
    assert close["code"] == "too_slow" and f"more than {EVENT_BUFFER} entries" in close["message"]
    ids = [int(m) for m in re.findall(rb"\nid: (\d+)\n", b"\n" + data)]
    assert ids and close["last_event_id"] == ids[-1]


def closed_too_slow(node: NodeProcess) -> float:
    text = node.get("/metrics").body.decode()
    pattern = r'^customs_event_streams_closed_total\{reason="too_slow"\} (\S+)$'
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


def open_streams(node: NodeProcess) -> float:
    text = node.get("/metrics").body.decode()
    found = re.search(r"^customs_event_streams (\S+)$", text, re.M)
    assert found is not None, text
    return float(found.group(1))


def test_streams_are_limited_counted_and_freed_when_a_client_hangs_up(cluster: Cluster) -> None:
    cn = cluster["CN"]
    cluster.wait_until(lambda: open_streams(cn) == 0, what="earlier streams to be freed")
    streams = [Sse(cn) for _ in range(MAX_STREAMS)]
    try:
        assert open_streams(cn) == MAX_STREAMS
        reply = cn.get("/v1/events")
        assert reply.status == 503 and reply.json()["code"] == "busy"
        streams.pop().close()  # no entry is committed to write to it: it is noticed idle
        cluster.wait_until(lambda: open_streams(cn) == MAX_STREAMS - 1, what="a freed slot")
        streams.append(Sse(cn))
        assert streams[-1].response.status == 200
    finally:
        for stream in streams:
            stream.close()
