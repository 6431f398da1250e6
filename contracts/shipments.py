"""Shipment kinds: shipment.declare and shipment.event (subject ``shipment/<ucr>``; a
declaration also touches every certificate it cites)."""

from __future__ import annotations

from contracts import certificates
from contracts.errors import Rejection
from contracts.identifiers import (
    check_container,
    check_country,
    check_each,
    check_hs_code,
    check_locode,
    check_ucr,
)
from contracts.lifecycle import PREVIOUS, SAME, Lifecycle
from contracts.rules import Body, Context, Kind, require_jurisdiction
from contracts.schema import CERT_ID, Field, Shape, invalid, list_of, one_of, pattern, string, text
from contracts.state import Record, StateReader, Writes, load, shipment_key
from ledger.genesis import Member

__all__ = ["EVENTS", "KINDS", "LIFECYCLE", "subject"]

_BEFORE_HOLD = ("declared", "loaded", "arrived")
_INSPECTABLE = (*_BEFORE_HOLD, "held")
_TABLE: dict[tuple[str, str], str] = {("declared", "loaded"): "loaded"}
_TABLE.update({(s, "departed"): "departed" for s in ("declared", "loaded", "arrived")})
_TABLE[("departed", "arrived")] = "arrived"
_TABLE.update({(s, "inspected"): SAME for s in _INSPECTABLE})
_TABLE.update({(s, "held"): "held" for s in _BEFORE_HOLD})
_TABLE[("held", "released")] = PREVIOUS
_TABLE.update({(s, "seized"): "seized" for s in _INSPECTABLE})
_TABLE[("arrived", "cleared")] = "cleared"
LIFECYCLE = Lifecycle("shipment", _TABLE)

EVENTS = ("loaded", "departed", "arrived", "inspected", "held", "released", "seized", "cleared")
_NEEDS_REASON = ("held", "seized")

_containers = list_of(string, 0, 100)
_hs_codes = list_of(string, 1, 50)


def subject(ucr: str) -> str:
    return f"shipment/{ucr}"


def _existing(state: StateReader, ucr: str) -> Record:
    record = load(state, shipment_key(ucr))
    if record is None:
        raise Rejection("not_found", f"shipment {ucr} does not exist")
    return record


def _require_in_force(cert_ids: list[str], records: list[Record], t: int) -> None:
    for cert_id, record in zip(cert_ids, records, strict=True):
        reason = certificates.not_in_force_reason(record, t)
        if reason is not None:
            raise Rejection("not_in_force", f"cited certificate {cert_id} {reason}")


# --- shipment.declare ----------------------------------------------------------------

_DECLARE_FIELDS = Shape(
    Field("ucr", string),
    Field("exporter", text(64)),
    Field("consignee_country", string),
    Field("origin_port", string),
    Field("destination_port", string),
    Field("containers", _containers),
    Field("hs_codes", _hs_codes),
    Field("certificates", list_of(pattern(CERT_ID, "a certificate id"), 0, 20)),
)


def _declare_subjects(body: Body) -> tuple[str, ...]:
    return (subject(body["ucr"]), *(certificates.subject(c) for c in body["certificates"]))


def _declare_identifiers(body: Body) -> None:
    check_ucr("body.ucr", body["ucr"])
    check_country("body.consignee_country", body["consignee_country"])
    check_locode("body.origin_port", body["origin_port"])
    check_locode("body.destination_port", body["destination_port"])
    check_each("body.containers", body["containers"], check_container)
    check_each("body.hs_codes", body["hs_codes"], check_hs_code)


def _declare_jurisdiction(body: Body, author: Member) -> None:
    require_jurisdiction(author, body["ucr"][1:3], "the UCR's country")
    require_jurisdiction(author, body["origin_port"][:2], "origin_port")


def _check_cited(body: Body, cert_id: str, record: Record) -> None:
    if record["type"] == certificates.AEO:
        return
    if not set(record["hs_codes"]) & set(body["hs_codes"]):
        raise Rejection(
            "inconsistent", f"certificate {cert_id} shares no HS code with the shipment"
        )
    if record["destination"] != body["consignee_country"]:
        raise Rejection(
            "inconsistent",
            f"certificate {cert_id} is for {record['destination']}, the consignee is in "
            f"{body['consignee_country']}",
        )


def _apply_declare(ctx: Context, body: Body) -> Writes:
    ucr, cited = body["ucr"], body["certificates"]
    records = [certificates.existing(ctx.state, cert_id) for cert_id in cited]
    key = shipment_key(ucr)
    if ctx.state.get(key) is not None:
        raise Rejection("duplicate", f"shipment {ucr} already exists")
    _require_in_force(cited, records, ctx.block_time)
    if body["destination_port"][:2] != body["consignee_country"]:
        raise Rejection(
            "inconsistent",
            f"destination_port {body['destination_port']} is not in consignee_country "
            f"{body['consignee_country']}",
        )
    for cert_id, record in zip(cited, records, strict=True):
        _check_cited(body, cert_id, record)
    head = {"status": "declared", "version": 1, "updated_at": ctx.block_time}
    rest = {k: v for k, v in body.items() if k != "ucr"}
    rest.update(declared_by=ctx.author.id, declared_at=ctx.block_time)
    return {key: Record(head, rest).encode()}


# --- shipment.event ------------------------------------------------------------------

_EVENT_FIELDS = Shape(
    Field("ucr", string),
    Field("event", one_of(*EVENTS)),
    Field("location", string),
    Field("containers", _containers, required=False),
    Field("result", one_of("compliant", "discrepancy"), required=False),
    Field("reason", text(500), required=False),
)


def _event_shape(body: Body) -> None:
    event = body["event"]
    if event == "inspected" and "result" not in body:
        raise invalid("body.result", "required for an inspected event")
    if event != "inspected" and "result" in body:
        raise invalid("body.result", f"must be absent for a {event} event")
    if event in _NEEDS_REASON and "reason" not in body:
        raise invalid("body.reason", f"required for a {event} event")


def _event_identifiers(body: Body) -> None:
    check_ucr("body.ucr", body["ucr"])
    check_locode("body.location", body["location"])
    check_each("body.containers", body.get("containers", ()), check_container)


def _event_jurisdiction(body: Body, author: Member) -> None:
    require_jurisdiction(author, body["location"][:2], "location")


def _next_status(ctx: Context, record: Record, ucr: str, event: str) -> None:
    status = record["status"]
    target = LIFECYCLE.next(status, event, ctx.author.id, ucr)
    if target == PREVIOUS:
        record["status"] = record.pop("held_from")
    elif target != SAME:
        if target == "held":
            record["held_from"] = status
        else:
            record.pop("held_from", None)
        record["status"] = target


def _apply_event(ctx: Context, body: Body) -> Writes:
    ucr, event = body["ucr"], body["event"]
    record = _existing(ctx.state, ucr)
    _next_status(ctx, record, ucr, event)
    if event == "cleared":
        cited = record["certificates"]
        records = [certificates.existing(ctx.state, cert_id) for cert_id in cited]
        _require_in_force(cited, records, ctx.block_time)
    undeclared = [c for c in body.get("containers", ()) if c not in record["containers"]]
    if undeclared:
        raise Rejection("inconsistent", f"containers {undeclared} are not declared on {ucr}")
    if event == "cleared" and body["location"][:2] != record["consignee_country"]:
        raise Rejection(
            "inconsistent",
            f"{ucr} can be cleared only in consignee_country {record['consignee_country']}, "
            f"not at {body['location']}",
        )
    record["version"] += 1
    record["last_event"] = event
    record["last_location"] = body["location"]
    record["updated_at"] = ctx.block_time
    return {shipment_key(ucr): record.encode()}


KINDS: tuple[Kind, ...] = (
    Kind(
        name="shipment.declare",
        roles=frozenset({"customs"}),
        fields=_DECLARE_FIELDS,
        subjects=_declare_subjects,
        apply=_apply_declare,
        identifiers=_declare_identifiers,
        jurisdiction=_declare_jurisdiction,
    ),
    Kind(
        name="shipment.event",
        roles=frozenset({"customs"}),
        fields=_EVENT_FIELDS,
        subjects=lambda body: (subject(body["ucr"]),),
        apply=_apply_event,
        shape=_event_shape,
        identifiers=_event_identifiers,
        jurisdiction=_event_jurisdiction,
    ),
)
