"""Shipment kinds (issue 4, "Shipments"): declaration checks and the event lifecycle."""

from __future__ import annotations

import pytest

from contracts import shipment
from contracts.lifecycle import PREVIOUS, SAME
from contracts.shipments import EVENTS, LIFECYCLE
from tests.samples import DAY_MS, cert_issue, container, declare, event
from tests.sandbox import GENESIS_TIME, Sandbox

T0 = GENESIS_TIME
C1, C2, C3 = container("MSC", 1), container("MSC", 2), container("CMA", 3)
STATUSES = ("declared", "loaded", "departed", "arrived", "held", "seized", "cleared")

# The issue's transition list, written out independently of contracts/shipments.py.
ALLOWED = {
    "loaded": {"declared": "loaded"},
    "departed": {"declared": "departed", "loaded": "departed", "arrived": "departed"},
    "arrived": {"departed": "arrived"},
    "inspected": {s: SAME for s in ("declared", "loaded", "arrived", "held")},
    "held": {s: "held" for s in ("declared", "loaded", "arrived")},
    "released": {"held": PREVIOUS},
    "seized": {s: "seized" for s in ("declared", "loaded", "arrived", "held")},
    "cleared": {"arrived": "cleared"},
}
# How to bring a fresh shipment to each status: (author, event, location) steps.
PATHS = {
    "declared": [],
    "loaded": [("CN", "loaded", "CNSHA")],
    "departed": [("CN", "departed", "CNSHA")],
    "arrived": [("CN", "departed", "CNSHA"), ("DE", "arrived", "DEHAM")],
    "held": [("CN", "held", "CNSHA")],
    "seized": [("CN", "seized", "CNSHA")],
    "cleared": [
        ("CN", "departed", "CNSHA"),
        ("DE", "arrived", "DEHAM"),
        ("DE", "cleared", "DEHAM"),
    ],
}


@pytest.fixture
def box() -> Sandbox:
    sandbox = Sandbox()
    assert sandbox.submit("CN", "cert.issue", cert_issue("CO-1")) == "accept"
    return sandbox


def status(box: Sandbox, ucr: str) -> str:
    record = shipment(box.state, ucr)
    assert record is not None
    return str(record["status"])


def test_table_matches_the_issue() -> None:
    table = {(s, e): t for e, moves in ALLOWED.items() for s, t in moves.items()}
    assert dict(LIFECYCLE.table) == table
    assert set(EVENTS) == set(ALLOWED)


@pytest.mark.parametrize("start", STATUSES)
@pytest.mark.parametrize("name", EVENTS)
def test_every_event_from_every_status(box: Sandbox, start: str, name: str) -> None:
    ucr = "6CN-T1"
    assert box.submit("CN", "shipment.declare", declare(ucr, certificates=("CO-1",))) == "accept"
    for author, step, where in PATHS[start]:
        assert box.submit(author, "shipment.event", event(ucr, step, where)) == "accept"
    assert status(box, ucr) == start
    where = "DEHAM" if start in ("arrived", "cleared", "departed") else "CNSHA"
    author = "DE" if where == "DEHAM" else "CN"
    before = dict(box.state.data)
    outcome = box.submit(author, "shipment.event", event(ucr, name, where))
    target = ALLOWED[name].get(start)
    if target is None:
        assert outcome == "invalid_transition"
        assert box.state.data == before
    else:
        assert outcome == "accept"
        expected = {SAME: start, PREVIOUS: "declared"}.get(target, target)
        assert status(box, ucr) == expected


@pytest.mark.parametrize("before_hold", ["declared", "loaded", "arrived"])
def test_release_returns_to_the_status_before_the_hold(box: Sandbox, before_hold: str) -> None:
    ucr = "6CN-H1"
    box.submit("CN", "shipment.declare", declare(ucr))
    for author, step, where in PATHS[before_hold]:
        box.submit(author, "shipment.event", event(ucr, step, where))
    where = "DEHAM" if before_hold == "arrived" else "CNSHA"
    author = "DE" if where == "DEHAM" else "CN"
    assert box.submit(author, "shipment.event", event(ucr, "held", where)) == "accept"
    assert box.submit(author, "shipment.event", event(ucr, "inspected", where)) == "accept"
    assert status(box, ucr) == "held"
    assert box.submit(author, "shipment.event", event(ucr, "released", where)) == "accept"
    assert status(box, ucr) == before_hold
    record = shipment(box.state, ucr)
    assert record is not None and "held_from" not in record


def test_declaration_record_and_version(box: Sandbox) -> None:
    body = declare("6CN-1", containers=(C1, C2), certificates=("CO-1",))
    assert box.submit("CN", "shipment.declare", body) == "accept"
    box.submit("CN", "shipment.event", event("6CN-1", "loaded", "CNSHA"))
    record = shipment(box.state, "6CN-1")
    assert record is not None
    assert {k: record[k] for k in body} == body
    assert record["declared_by"] == "CN"
    assert record["version"] == 2
    assert record["last_location"] == "CNSHA"


def test_cited_certificate_must_match_hs_and_destination(box: Sandbox) -> None:
    assert (
        box.submit(
            "CN", "shipment.declare", declare("6CN-1", hs_codes=("020130",), certificates=("CO-1",))
        )
        == "inconsistent"
    )
    box.submit("CN", "cert.issue", cert_issue("CO-US", destination="US"))
    assert (
        box.submit("CN", "shipment.declare", declare("6CN-1", certificates=("CO-US",)))
        == "inconsistent"
    )
    # An AEO certificate vouches for the operator, not the goods: no HS or destination match.
    box.submit("CN", "cert.issue", cert_issue("AEO-1", type_="aeo"))
    body = declare("6CN-1", hs_codes=("020130",), certificates=("AEO-1",))
    assert box.submit("CN", "shipment.declare", body) == "accept"


def test_event_containers_must_be_declared(box: Sandbox) -> None:
    box.submit("CN", "shipment.declare", declare("6CN-1", containers=(C1, C2)))
    assert (
        box.submit("CN", "shipment.event", event("6CN-1", "loaded", "CNSHA", containers=[C3]))
        == "inconsistent"
    )
    assert (
        box.submit("CN", "shipment.event", event("6CN-1", "loaded", "CNSHA", containers=[C2]))
        == "accept"
    )


def test_clearance_rechecks_certificates_at_block_time(box: Sandbox) -> None:
    box.submit("CN", "cert.issue", cert_issue("CO-SHORT", valid_until=T0 + DAY_MS))
    box.submit("CN", "shipment.declare", declare("6CN-1", certificates=("CO-1", "CO-SHORT")))
    for author, step, where in PATHS["arrived"]:
        box.submit(author, "shipment.event", event("6CN-1", step, where))
    later = T0 + DAY_MS
    cleared = event("6CN-1", "cleared", "DEHAM")
    assert box.submit("DE", "shipment.event", cleared, ts=later, block_time=later) == "not_in_force"
    assert status(box, "6CN-1") == "arrived"
    box.submit(
        "CN",
        "cert.amend",
        {"cert_id": "CO-SHORT", "changes": {"valid_until": T0 + 2 * DAY_MS}, "reason": "extended"},
        ts=later,
        block_time=later,
    )
    assert (
        box.submit("DE", "shipment.event", cleared, ts=later + 1, block_time=later + 1) == "accept"
    )
    assert status(box, "6CN-1") == "cleared"


def test_clearance_only_in_the_consignee_country(box: Sandbox) -> None:
    box.submit("CN", "shipment.declare", declare("6CN-1"))
    box.submit("CN", "shipment.event", event("6CN-1", "departed", "CNSHA"))
    box.submit("NL", "shipment.event", event("6CN-1", "arrived", "NLRTM"))
    assert box.submit("NL", "shipment.event", event("6CN-1", "cleared", "NLRTM")) == "inconsistent"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (declare("6DE-1", origin_port="DEHAM"), "not_permitted"),  # UCR country is DE
        (declare("6CN-1", origin_port="DEHAM"), "not_permitted"),  # port outside CN
        (declare("6HK-1", origin_port="HKHKG"), "accept"),  # HK is also CN's
    ],
)
def test_declaration_jurisdiction(box: Sandbox, body: dict[str, object], code: str) -> None:
    assert box.submit("CN", "shipment.declare", body) == code
