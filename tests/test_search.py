"""GET /v1/certificates and /v1/shipments on real nodes: filters, date ranges, paging
with cursors, an index that follows a status change, and a store from before the
indexes (its index keys removed) rebuilt on start-up."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from ledger.store import Store
from node.daemon.indexes import INDEX_PREFIX
from tests import samples
from tests.cluster import Cluster, NodeProcess

_serial = itertools.count(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("search") / "net", ["CN", "DE"], validators=["CN"]) as c:
        c.start()
        c.wait_height(1)
        yield c


@pytest.fixture(scope="module")
def records(cluster: Cluster) -> dict[str, Any]:
    """Certificates by CN (holders A and B) and DE, one revoked, and three shipments."""
    cn, de = cluster["CN"], cluster["DE"]
    certs: dict[str, tuple[str, str]] = {}
    ids = []
    for n in range(7):
        cert_id = f"CN-S-{next(_serial):06d}"
        body = samples.cert_issue(cert_id, "CN")
        body["holder"] = "Holder A" if n % 2 == 0 else "Holder B"
        ids.append(submit(cn, "cert.issue", body))
        certs[cert_id] = ("CN", body["holder"])
        cluster.wait_committed(ids[-1:])  # one block each: distinct issued_at times
    for _ in range(3):
        cert_id = f"DE-S-{next(_serial):06d}"
        ids.append(submit(de, "cert.issue", samples.cert_issue(cert_id, "DE", destination="NL")))
        certs[cert_id] = ("DE", "Shenzhen Example Electronics Co.")
    revoked = next(iter(certs))
    ids.append(submit(cn, "cert.revoke", {"cert_id": revoked, "reason": "fraud"}))
    ships = {}
    for port in ("DEHAM", "DEHAM", "NLRTM"):
        ucr = f"6CN{next(_serial):08d}"
        country = port[:2]
        body = samples.declare(ucr, destination_port=port, consignee_country=country)
        ids.append(submit(cn, "shipment.declare", body))
        ships[ucr] = port
    cluster.wait_committed(ids)
    loaded = next(iter(ships))
    cluster.wait_committed([submit(cn, "shipment.event", samples.event(loaded, "loaded", "CNSHA"))])
    return {"certs": certs, "revoked": revoked, "ships": ships, "loaded": loaded}


def submit(node: NodeProcess, kind: str, body: dict[str, Any]) -> str:
    reply = node.post("/v1/submit", {"kind": kind, "body": body})
    assert reply.status == 202, reply.body
    entry_id: str = reply.json()["id"]
    return entry_id


def pages(node: NodeProcess, path: str, query: str, limit: int) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following next_cursor."""
    out: list[list[dict[str, Any]]] = []
    cursor = ""
    while True:
        sep = "&" if query else ""
        reply = node.get(f"{path}?{query}{sep}limit={limit}{cursor}")
        assert reply.status == 200, reply.body
        doc = reply.json()
        out.append(doc["items"])
        if doc["next_cursor"] is None:
            return out
        cursor = f"&cursor={doc['next_cursor']}"


def flat(node: NodeProcess, path: str, query: str = "", limit: int = 3) -> list[dict[str, Any]]:
    return [item for page in pages(node, path, query, limit) for item in page]


def test_certificates_page_in_issue_order_without_gap_or_duplicate(
    cluster: Cluster, records: dict[str, Any]
) -> None:
    cn = cluster["CN"]
    got = pages(cn, "/v1/certificates", "", 3)
    assert all(len(page) == 3 for page in got[:-1]) and 1 <= len(got[-1]) <= 3
    items = [item for page in got for item in page]
    order = [(i["issued_at"], i["cert_id"]) for i in items]
    assert order == sorted(order) and len(set(order)) == len(order)
    assert {i["cert_id"] for i in items} == set(records["certs"]) and len(items) == 10


def test_certificate_filters_and_date_range(cluster: Cluster, records: dict[str, Any]) -> None:
    cn, certs, revoked = cluster["CN"], records["certs"], records["revoked"]
    by_de = flat(cn, "/v1/certificates", "issuer=DE")
    assert {i["cert_id"] for i in by_de} == {c for c, (who, _) in certs.items() if who == "DE"}
    holder_a = flat(cn, "/v1/certificates", "holder=Holder%20A", limit=2)
    assert {i["cert_id"] for i in holder_a} == {c for c, (_, h) in certs.items() if h == "Holder A"}
    # The revocation moved the certificate from the active index to the revoked one.
    assert [i["cert_id"] for i in flat(cn, "/v1/certificates", "status=revoked")] == [revoked]
    active_a = flat(cn, "/v1/certificates", "holder=Holder%20A&status=active")
    assert {i["cert_id"] for i in active_a} == {i["cert_id"] for i in holder_a} - {revoked}
    everything = flat(cn, "/v1/certificates", limit=50)
    low, high = everything[2]["issued_at"], everything[5]["issued_at"]
    ranged = flat(cn, "/v1/certificates", f"from={low}&to={high}")
    assert ranged and all(low <= i["issued_at"] < high for i in ranged)
    assert [i["cert_id"] for i in ranged] == [
        i["cert_id"] for i in everything if low <= i["issued_at"] < high
    ]


def test_shipments_by_port_of_arrival_and_status(cluster: Cluster, records: dict[str, Any]) -> None:
    cn, ships = cluster["CN"], records["ships"]
    hamburg = flat(cn, "/v1/shipments", "port_of_arrival=DEHAM", limit=1)
    assert {i["ucr"] for i in hamburg} == {u for u, port in ships.items() if port == "DEHAM"}
    assert {i["ucr"] for i in flat(cn, "/v1/shipments", "destination_port=NLRTM")} == {
        u for u, port in ships.items() if port == "NLRTM"
    }
    assert [i["ucr"] for i in flat(cn, "/v1/shipments", "status=loaded")] == [records["loaded"]]
    declared = {i["ucr"] for i in flat(cn, "/v1/shipments", "status=declared")}
    assert declared == set(ships) - {records["loaded"]}


@pytest.mark.parametrize(
    "query",
    [
        "status=lost",
        "limit=0",
        "limit=201",
        "cursor=zz",
        "from=-1",
        "colour=red",
        "issuer=CN&issuer=DE",
    ],
)
def test_bad_queries_are_400_malformed(cluster: Cluster, query: str) -> None:
    reply = cluster["CN"].get(f"/v1/certificates?{query}")
    assert reply.status == 400 and reply.json()["code"] == "malformed", (query, reply.body)


def test_a_store_without_indexes_is_indexed_on_start(
    cluster: Cluster, records: dict[str, Any]
) -> None:
    de = cluster["DE"]
    before = flat(de, "/v1/certificates", limit=50)
    assert len(before) == 10
    assert cluster.stop("DE") == 0
    # What a store written before the indexes existed looks like.
    store = Store.open(de.root / "data" / "ledger", cluster.genesis)
    try:
        keys = [key for key, _ in store.iter_raw(INDEX_PREFIX)]
        assert keys
        store.write_extra(dict.fromkeys(keys))
    finally:
        store.close()
    cluster.start("DE")
    assert "built the search indexes for 13 records" in de.log_text()
    assert flat(de, "/v1/certificates", limit=50) == before
    assert len(flat(de, "/v1/shipments", "port_of_arrival=DEHAM")) == 2
