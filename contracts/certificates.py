"""Certificate kinds: cert.issue, cert.amend, cert.suspend, cert.reinstate, cert.revoke,
cert.recognize (subject ``cert/<cert_id>``).

A certificate is in force at time t when it is ``active`` and valid_from <= t < valid_until.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.errors import Rejection
from contracts.identifiers import check_country, check_each, check_hs_code
from contracts.lifecycle import SAME, Lifecycle
from contracts.rules import Body, Context, Kind, require_jurisdiction
from contracts.schema import (
    CERT_ID,
    Field,
    Shape,
    invalid,
    list_of,
    map_of,
    one_of,
    pattern,
    sha256_hex,
    string,
    text,
    timestamp,
)
from contracts.state import Record, StateReader, Writes, cert_key, load
from ledger.genesis import Member

__all__ = ["KINDS", "LIFECYCLE", "TYPES", "in_force", "not_in_force_reason", "subject"]

TYPES = ("origin", "phytosanitary", "veterinary", "aeo", "export_licence")
AEO = "aeo"
# Fields an AEO certificate (an operator's status, not a consignment's) must not carry.
_NOT_FOR_AEO = ("destination", "hs_codes")

LIFECYCLE = Lifecycle(
    "certificate",
    {
        ("active", "amend"): SAME,
        ("suspended", "amend"): SAME,
        ("active", "suspend"): "suspended",
        ("suspended", "reinstate"): "active",
        ("active", "revoke"): "revoked",
        ("suspended", "revoke"): "revoked",
        ("active", "recognize"): SAME,
    },
)

# Kept in the record's head: what the rules read (status changes, recognition, and the
# in-force and consistency checks of every declaration that cites the certificate).
_HEAD_FIELDS = ("type", "valid_from", "valid_until", "destination", "hs_codes")

cert_id_field = Field("cert_id", pattern(CERT_ID, "a certificate id"))
_reason = Field("reason", text(500))
_hs_codes = list_of(string, 1, 50)


def subject(cert_id: str) -> str:
    return f"cert/{cert_id}"


def _subjects(body: Body) -> tuple[str, ...]:
    return (subject(body["cert_id"]),)


def in_force(record: Record | Mapping[str, Any], t: int) -> bool:
    return not_in_force_reason(record, t) is None


def not_in_force_reason(record: Record | Mapping[str, Any], t: int) -> str | None:
    """Why the certificate is not in force at ``t``, or None when it is."""
    if record["status"] != "active":
        return f"is {record['status']}"
    if t < record["valid_from"]:
        return f"is not valid before {record['valid_from']} (block time {t})"
    if t >= record["valid_until"]:
        return f"expired at {record['valid_until']} (block time {t})"
    return None


def existing(state: StateReader, cert_id: str) -> Record:
    record = load(state, cert_key(cert_id))
    if record is None:
        raise Rejection("not_found", f"certificate {cert_id} does not exist")
    return record


def _only_issuer(ctx: Context, record: Record, cert_id: str, kind: str) -> None:
    if record["issuer"] != ctx.author.id:
        raise Rejection(
            "not_permitted",
            f"{kind}: only the issuing member {record['issuer']} may act on {cert_id}, "
            f"not {ctx.author.id}",
        )


def _apply_status(ctx: Context, record: Record, cert_id: str, event: str) -> Writes:
    target = LIFECYCLE.next(record["status"], event, ctx.author.id, cert_id)
    if target != SAME:
        record["status"] = target
    record["updated_at"] = ctx.block_time
    return {cert_key(cert_id): record.encode()}


# --- cert.issue ----------------------------------------------------------------------

_ISSUE_FIELDS = Shape(
    cert_id_field,
    Field("type", one_of(*TYPES)),
    Field("issued_in", string),
    Field("holder", text(64)),
    Field("origin", string),
    Field("destination", string, required=False),
    Field("hs_codes", _hs_codes, required=False),
    Field("valid_from", timestamp),
    Field("valid_until", timestamp),
    Field("document_sha256", sha256_hex),
)


def _issue_shape(body: Body) -> None:
    for name in _NOT_FOR_AEO:
        if body["type"] == AEO and name in body:
            raise invalid(f"body.{name}", "must be absent for an aeo certificate")
        if body["type"] != AEO and name not in body:
            raise invalid(f"body.{name}", f"missing (required for a {body['type']} certificate)")
    if body["valid_from"] >= body["valid_until"]:
        raise invalid("body.valid_until", "must be after valid_from")


def _issue_identifiers(body: Body) -> None:
    check_country("body.issued_in", body["issued_in"])
    check_country("body.origin", body["origin"])
    if "destination" in body:
        check_country("body.destination", body["destination"])
    check_each("body.hs_codes", body.get("hs_codes", ()), check_hs_code)


def _issue_jurisdiction(body: Body, author: Member) -> None:
    require_jurisdiction(author, body["issued_in"], "issued_in")


def _apply_issue(ctx: Context, body: Body) -> Writes:
    key = cert_key(body["cert_id"])
    if ctx.state.get(key) is not None:
        raise Rejection("duplicate", f"certificate {body['cert_id']} already exists")
    if body["type"] == "origin" and body["origin"] != body["issued_in"]:
        raise Rejection(
            "inconsistent",
            f"an origin certificate issued in {body['issued_in']} cannot state origin "
            f"{body['origin']}",
        )
    head = {name: body[name] for name in _HEAD_FIELDS if name in body}
    head.update(
        issuer=ctx.author.id,
        status="active",
        version=1,
        recognitions={},
        updated_at=ctx.block_time,
    )
    rest = {k: v for k, v in body.items() if k not in _HEAD_FIELDS and k != "cert_id"}
    rest["issued_at"] = ctx.block_time
    return {key: Record(head, rest).encode()}


# --- cert.amend ----------------------------------------------------------------------

_CHANGE_FIELDS = Shape(
    Field("holder", text(64), required=False),
    Field("destination", string, required=False),
    Field("hs_codes", _hs_codes, required=False),
    Field("valid_until", timestamp, required=False),
    Field("document_sha256", sha256_hex, required=False),
)
_AMEND_FIELDS = Shape(cert_id_field, Field("changes", map_of(_CHANGE_FIELDS, 1)), _reason)


def _amend_identifiers(body: Body) -> None:
    changes = body["changes"]
    if "destination" in changes:
        check_country("body.changes.destination", changes["destination"])
    check_each("body.changes.hs_codes", changes.get("hs_codes", ()), check_hs_code)


def _apply_amend(ctx: Context, body: Body) -> Writes:
    cert_id, changes = body["cert_id"], body["changes"]
    record = existing(ctx.state, cert_id)
    # Rule 7 checks that need the record run as soon as it is found.
    for name in _NOT_FOR_AEO:
        if record["type"] == AEO and name in changes:
            raise invalid(f"body.changes.{name}", "must be absent for an aeo certificate")
    if "valid_until" in changes and changes["valid_until"] <= record["valid_from"]:
        raise invalid(
            "body.changes.valid_until", f"must be after valid_from {record['valid_from']}"
        )
    _only_issuer(ctx, record, cert_id, "cert.amend")
    LIFECYCLE.next(record["status"], "amend", ctx.author.id, cert_id)
    for name in _HEAD_FIELDS:
        if name in changes:
            record[name] = changes[name]
    body_changes = {k: v for k, v in changes.items() if k not in _HEAD_FIELDS}
    if body_changes:
        record.update_body(body_changes)
    record["version"] += 1
    record["updated_at"] = ctx.block_time
    return {cert_key(cert_id): record.encode()}


# --- cert.suspend / cert.reinstate / cert.revoke -------------------------------------


def _status_kind(event: str) -> Kind:
    name = f"cert.{event}"

    def apply(ctx: Context, body: Body) -> Writes:
        record = existing(ctx.state, body["cert_id"])
        _only_issuer(ctx, record, body["cert_id"], name)
        return _apply_status(ctx, record, body["cert_id"], event)

    return Kind(
        name=name,
        roles=frozenset({"issuer"}),
        fields=Shape(cert_id_field, _reason),
        subjects=_subjects,
        apply=apply,
    )


# --- cert.recognize ------------------------------------------------------------------


def _apply_recognize(ctx: Context, body: Body) -> Writes:
    cert_id, author = body["cert_id"], ctx.author.id
    record = existing(ctx.state, cert_id)
    if author in record["recognitions"]:
        raise Rejection("duplicate", f"{author} already recognises {cert_id}")
    if record["issuer"] == author:
        raise Rejection("not_permitted", f"{author} issued {cert_id} and cannot recognise it")
    LIFECYCLE.next(record["status"], "recognize", author, cert_id)
    reason = not_in_force_reason(record, ctx.block_time)
    if reason is not None:
        raise Rejection("not_in_force", f"certificate {cert_id} {reason}")
    if record["type"] != AEO:
        raise Rejection(
            "inconsistent", f"only aeo certificates are recognised; {cert_id} is {record['type']}"
        )
    record["recognitions"][author] = body["arrangement"]
    record["updated_at"] = ctx.block_time
    return {cert_key(cert_id): record.encode()}


KINDS: tuple[Kind, ...] = (
    Kind(
        name="cert.issue",
        roles=frozenset({"issuer"}),
        fields=_ISSUE_FIELDS,
        subjects=_subjects,
        apply=_apply_issue,
        shape=_issue_shape,
        identifiers=_issue_identifiers,
        jurisdiction=_issue_jurisdiction,
    ),
    Kind(
        name="cert.amend",
        roles=frozenset({"issuer"}),
        fields=_AMEND_FIELDS,
        subjects=_subjects,
        apply=_apply_amend,
        identifiers=_amend_identifiers,
    ),
    _status_kind("suspend"),
    _status_kind("reinstate"),
    _status_kind("revoke"),
    Kind(
        name="cert.recognize",
        roles=frozenset({"issuer", "customs"}),
        fields=Shape(cert_id_field, Field("arrangement", text(100))),
        subjects=_subjects,
        apply=_apply_recognize,
    ),
)
