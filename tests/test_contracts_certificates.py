"""Certificate kinds (issue 4, "Certificates"): records, versions, lifecycle, recognition."""

from __future__ import annotations

import json

import pytest

from contracts import certificate, shipment
from contracts.certificates import LIFECYCLE, in_force
from contracts.lifecycle import SAME
from tests.samples import DAY_MS, DOCUMENT, cert_issue, declare
from tests.sandbox import GENESIS_TIME, Sandbox

T0 = GENESIS_TIME


@pytest.fixture
def box() -> Sandbox:
    return Sandbox()


def reason(cert_id: str, text: str = "because") -> dict[str, str]:
    return {"cert_id": cert_id, "reason": text}


def test_issue_records_the_body_as_active_version_1(box: Sandbox) -> None:
    body = cert_issue("CO-1", hs_codes=("851712", "851713"))
    assert box.submit("CN", "cert.issue", body) == "accept"
    record = certificate(box.state, "CO-1")
    assert record is not None
    assert {k: record[k] for k in body} == body
    assert record["status"] == "active"
    assert record["version"] == 1
    assert record["issuer"] == "CN"
    assert record["recognitions"] == {}
    assert certificate(box.state, "CO-2") is None


def test_aeo_carries_neither_destination_nor_hs_codes(box: Sandbox) -> None:
    body = cert_issue("AEO-1", type_="aeo")
    assert "destination" not in body and "hs_codes" not in body
    assert box.submit("CN", "cert.issue", body) == "accept"
    assert (
        box.submit("CN", "cert.issue", {**cert_issue("AEO-2", type_="aeo"), "destination": "DE"})
        == "invalid_body"
    )
    assert (
        box.submit("CN", "cert.issue", {**body, "cert_id": "AEO-3", "hs_codes": ["851712"]})
        == "invalid_body"
    )


@pytest.mark.parametrize("type_", ["phytosanitary", "veterinary", "export_licence"])
def test_non_origin_types_may_state_another_origin(box: Sandbox, type_: str) -> None:
    body = {**cert_issue("C-1", type_=type_), "origin": "VN"}
    assert box.submit("CN", "cert.issue", body) == "accept"


def test_origin_type_must_match_issuing_country(box: Sandbox) -> None:
    assert box.submit("CN", "cert.issue", {**cert_issue("CO-1"), "origin": "VN"}) == "inconsistent"
    assert certificate(box.state, "CO-1") is None


def test_amend_applies_changes_and_bumps_version(box: Sandbox) -> None:
    box.submit("CN", "cert.issue", cert_issue("CO-1"))
    changes = {
        "holder": "New Co",
        "destination": "US",
        "hs_codes": ["020130"],
        "valid_until": T0 + 10 * DAY_MS,
        "document_sha256": "a" * 64,
    }
    assert (
        box.submit("CN", "cert.amend", {"cert_id": "CO-1", "changes": changes, "reason": "r"})
        == "accept"
    )
    record = certificate(box.state, "CO-1")
    assert record is not None
    assert {k: record[k] for k in changes} == changes
    assert record["version"] == 2
    assert record["document_sha256"] != DOCUMENT


def test_amend_valid_until_must_stay_after_valid_from(box: Sandbox) -> None:
    box.submit("CN", "cert.issue", cert_issue("CO-1", valid_from=T0 + 5))
    amend = {"cert_id": "CO-1", "changes": {"valid_until": T0 + 5}, "reason": "r"}
    assert box.submit("CN", "cert.amend", amend) == "invalid_body"
    amend["changes"] = {"valid_until": T0 + 6}
    assert box.submit("CN", "cert.amend", amend) == "accept"


def test_status_events_follow_the_table(box: Sandbox) -> None:
    box.submit("CN", "cert.issue", cert_issue("CO-1"))
    steps = [
        ("cert.reinstate", "invalid_transition", "active"),
        ("cert.suspend", "accept", "suspended"),
        ("cert.suspend", "invalid_transition", "suspended"),
        ("cert.reinstate", "accept", "active"),
        ("cert.suspend", "accept", "suspended"),
        ("cert.revoke", "accept", "revoked"),
        ("cert.reinstate", "invalid_transition", "revoked"),
        ("cert.revoke", "invalid_transition", "revoked"),
    ]
    for kind, outcome, status in steps:
        assert box.submit("CN", kind, reason("CO-1")) == outcome, kind
        record = certificate(box.state, "CO-1")
        assert record is not None and record["status"] == status
        assert record["version"] == 1  # status changes are not amendments


def test_transition_error_names_actor_status_and_event(box: Sandbox) -> None:
    box.submit("CN", "cert.issue", cert_issue("CO-1"))
    result = box.run([box.sign("CN", "cert.reinstate", reason("CO-1"))])
    message = result.rejected[0].message
    assert "CN" in message and "reinstate" in message and "'active'" in message


def test_lifecycle_table_is_exactly_the_issue() -> None:
    assert dict(LIFECYCLE.table) == {
        ("active", "amend"): SAME,
        ("suspended", "amend"): SAME,
        ("active", "suspend"): "suspended",
        ("suspended", "reinstate"): "active",
        ("active", "revoke"): "revoked",
        ("suspended", "revoke"): "revoked",
        ("active", "recognize"): SAME,
    }


@pytest.mark.parametrize("kind", ["cert.amend", "cert.suspend", "cert.reinstate", "cert.revoke"])
def test_only_the_issuing_member_acts(box: Sandbox, kind: str) -> None:
    box.submit("CN", "cert.issue", cert_issue("CO-1"))
    body = (
        reason("CO-1") if kind != "cert.amend" else {**reason("CO-1"), "changes": {"holder": "x"}}
    )
    before = dict(box.state.data)
    assert box.submit("DE", kind, body) == "not_permitted"
    assert box.state.data == before


def test_in_force_window_is_half_open() -> None:
    record = {"status": "active", "valid_from": 10, "valid_until": 20}
    assert not in_force(record, 9)
    assert in_force(record, 10)
    assert in_force(record, 19)
    assert not in_force(record, 20)
    assert not in_force({**record, "status": "suspended"}, 15)


def test_recognition_is_recorded_per_member(box: Sandbox) -> None:
    box.submit("CN", "cert.issue", cert_issue("AEO-1", type_="aeo"))
    assert (
        box.submit("DE", "cert.recognize", {"cert_id": "AEO-1", "arrangement": "EU-CN"}) == "accept"
    )
    assert (
        box.submit("NL", "cert.recognize", {"cert_id": "AEO-1", "arrangement": "EU-CN"}) == "accept"
    )
    assert (
        box.submit("DE", "cert.recognize", {"cert_id": "AEO-1", "arrangement": "again"})
        == "duplicate"
    )
    record = certificate(box.state, "AEO-1")
    assert record is not None
    assert record["recognitions"] == {"DE": "EU-CN", "NL": "EU-CN"}
    assert record["version"] == 1


def test_recognition_needs_the_certificate_in_force_at_block_time(box: Sandbox) -> None:
    box.submit("CN", "cert.issue", cert_issue("AEO-1", type_="aeo", valid_until=T0 + DAY_MS))
    late = T0 + DAY_MS
    body = {"cert_id": "AEO-1", "arrangement": "EU-CN"}
    assert box.submit("DE", "cert.recognize", body, ts=late, block_time=late) == "not_in_force"
    assert box.submit("DE", "cert.recognize", body, ts=late - 1, block_time=late - 1) == "accept"


def test_read_helpers_return_json_safe_current_state(box: Sandbox) -> None:
    box.submit("CN", "cert.issue", cert_issue("AEO-1", type_="aeo"))
    box.submit("DE", "cert.recognize", {"cert_id": "AEO-1", "arrangement": "EU-CN"})
    box.submit("CN", "shipment.declare", declare("6CN-1", certificates=("AEO-1",)))
    cert, ship = certificate(box.state, "AEO-1"), shipment(box.state, "6CN-1")
    assert cert is not None and ship is not None
    assert json.loads(json.dumps(cert)) == cert
    assert json.loads(json.dumps(ship)) == ship
    assert (cert["cert_id"], cert["status"], cert["recognitions"]) == (
        "AEO-1",
        "active",
        {"DE": "EU-CN"},
    )
    assert (ship["ucr"], ship["status"], ship["certificates"]) == ("6CN-1", "declared", ["AEO-1"])
    assert "body" not in cert and "body" not in ship
