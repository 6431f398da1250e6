"""Verdicts an official can act on, computed from verified histories (pure: the moment
to judge at comes in as an argument).

A certificate is IN FORCE at t when its replayed record is ``active`` and
``valid_from <= t < valid_until`` (docs/entries.md); otherwise the verdict says why, and
who did what when, from the authenticated entries themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import contracts
from contracts.certificates import not_in_force_reason
from ledger.bundle import VerifiedEntry, VerifiedHistory
from ledger.genesis import Genesis
from node.client.heads import format_time
from node.client.replay import certificate_entries, merge, replay

__all__ = [
    "IN_FORCE",
    "CertificateVerdict",
    "ShipmentView",
    "TimelineItem",
    "judge_certificate",
    "shipment_view",
    "timeline",
]

IN_FORCE = "IN_FORCE"
# What an official calls each certificate type (docs/entries.md's ``type`` values).
TYPE_NAMES = {
    "origin": "certificate of origin",
    "phytosanitary": "phytosanitary certificate",
    "veterinary": "veterinary certificate",
    "aeo": "AEO authorisation",
    "export_licence": "export licence",
}


@dataclass(frozen=True, slots=True)
class TimelineItem:
    time: int
    height: int
    log_index: int
    author: str
    author_name: str
    kind: str
    entry_id: str
    details: str

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "time_utc": format_time(self.time),
            "height": self.height,
            "log_index": self.log_index,
            "author": self.author,
            "author_name": self.author_name,
            "kind": self.kind,
            "entry_id": self.entry_id,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class CertificateVerdict:
    cert_id: str
    verdict: str  # IN_FORCE, REVOKED, SUSPENDED, EXPIRED, NOT_YET_VALID, UNKNOWN, DOCUMENT_MISMATCH
    headline: str  # the one line a person acts on
    at: int  # the moment judged (ms)
    record: Mapping[str, Any] | None  # the replayed record, None when unknown at ``at``
    recognitions: tuple[tuple[str, str, str], ...]  # (member id, name, arrangement)
    timeline: tuple[TimelineItem, ...]
    document: str | None = None  # "match", "mismatch" or None when not checked

    @property
    def in_force(self) -> bool:
        return self.verdict == IN_FORCE


def _name(genesis: Genesis, member_id: str) -> str:
    member = genesis.member(member_id)
    return member.name if member is not None else member_id


def _details(body: Mapping[str, Any], kind: str) -> str:
    if kind == "cert.issue":
        route = body["origin"]
        if "hs_codes" in body:
            route += f" to {body['destination']}, HS {' '.join(body['hs_codes'])}"
        name = TYPE_NAMES.get(body["type"], body["type"])
        return f"issued {name} to {body['holder']}, {route}"
    if kind == "cert.amend":
        return f"amended {', '.join(sorted(body['changes']))}: {body['reason']}"
    if kind in ("cert.suspend", "cert.reinstate", "cert.revoke"):
        return f"{kind.removeprefix('cert.')}: {body['reason']}"
    if kind == "cert.recognize":
        return f"recognised under {body['arrangement']}"
    if kind == "shipment.declare":
        return (
            f"declared {body['ucr']}: {body['exporter']}, {body['origin_port']} to "
            f"{body['destination_port']}, {len(body['containers'])} container(s), "
            f"certificates {', '.join(body['certificates']) or 'none'}"
        )
    if kind == "shipment.event":
        extra = [body[k] for k in ("result", "reason") if k in body]
        return f"{body['event']} at {body['location']}" + "".join(f": {x}" for x in extra)
    return kind


def timeline(genesis: Genesis, entries: Sequence[VerifiedEntry]) -> tuple[TimelineItem, ...]:
    return tuple(
        TimelineItem(
            time=e.time,
            height=e.height,
            log_index=e.log_index,
            author=e.entry.entry.author,
            author_name=_name(genesis, e.entry.entry.author),
            kind=e.entry.entry.kind,
            entry_id=e.entry.id_hex,
            details=_details(e.entry.entry.body, e.entry.entry.kind),
        )
        for e in entries
    )


def _last(entries: Sequence[VerifiedEntry], kind: str, until: int) -> VerifiedEntry | None:
    found = [e for e in entries if e.entry.entry.kind == kind and e.time <= until]
    return found[-1] if found else None


def judge_certificate(
    genesis: Genesis,
    history: VerifiedHistory,
    *,
    at: int,
    document: bytes | None = None,
) -> CertificateVerdict:
    """The verdict on ``history`` (a verified ``cert/<id>`` history) at moment ``at``."""
    cert_id = history.subject.removeprefix("cert/")
    own = certificate_entries(history.entries)
    state = replay(genesis, own, until=at)
    record = contracts.certificate(state, cert_id)
    items = timeline(genesis, [e for e in history.entries if e.time <= at])
    if record is None:
        later = f" (first recorded {format_time(own[0].time)})" if own else ""
        headline = f"UNKNOWN — proven absent from the ledger at {format_time(at)}{later}"
        return CertificateVerdict(cert_id, "UNKNOWN", headline, at, None, (), items)
    recognitions = tuple(
        (member, _name(genesis, member), arrangement)
        for member, arrangement in sorted(record["recognitions"].items())
    )
    verdict, headline = _status(genesis, own, record, at)
    checked = None
    if document is not None:
        digest = hashlib.sha256(document).hexdigest()
        checked = "match" if digest == record["document_sha256"] else "mismatch"
        if checked == "mismatch":
            verdict = "DOCUMENT_MISMATCH"
            headline = (
                f"DOCUMENT MISMATCH — the file's SHA-256 {digest[:16]}… is not the "
                f"certificate's {record['document_sha256'][:16]}…; the ledger's record: "
                f"{headline}"
            )
    return CertificateVerdict(cert_id, verdict, headline, at, record, recognitions, items, checked)


def _status(
    genesis: Genesis, own: Sequence[VerifiedEntry], record: Mapping[str, Any], at: int
) -> tuple[str, str]:
    status = record["status"]
    if status in ("revoked", "suspended"):
        kind = "cert.revoke" if status == "revoked" else "cert.suspend"
        event = _last(own, kind, at)
        assert event is not None, f"a {status} record without its {kind} entry"
        who = _name(genesis, event.entry.entry.author)
        reason = event.entry.entry.body["reason"]
        word = "REVOKED on" if status == "revoked" else "SUSPENDED since"
        return status.upper(), f"{word} {format_time(event.time)} by {who}: {reason}"
    reason = not_in_force_reason(record, at)
    if reason is None:
        until = format_time(record["valid_until"])
        name = TYPE_NAMES.get(record["type"], record["type"])
        return IN_FORCE, f"IN FORCE — {name}, valid until {until}"
    if at < record["valid_from"]:
        return "NOT_YET_VALID", f"NOT YET VALID — valid from {format_time(record['valid_from'])}"
    return "EXPIRED", f"EXPIRED on {format_time(record['valid_until'])}"


@dataclass(frozen=True, slots=True)
class CitedStatus:
    cert_id: str
    in_force: bool
    why: str  # "in force" or the rules' reason it was not


@dataclass(frozen=True, slots=True)
class ShipmentView:
    ucr: str
    record: Mapping[str, Any] | None
    timeline: tuple[TimelineItem, ...]
    # per shipment entry (by log index): each cited certificate's status at that moment
    cited: Mapping[int, tuple[CitedStatus, ...]] = field(default_factory=dict)


def shipment_view(
    genesis: Genesis, shipment: VerifiedHistory, certificates: Sequence[VerifiedHistory]
) -> ShipmentView:
    """A shipment's replayed record and timeline, with each cited certificate's status
    (replayed too) at each of the shipment's entries."""
    ucr = shipment.subject.removeprefix("shipment/")
    cert_ids = [h.subject.removeprefix("cert/") for h in certificates]
    own = {e.log_index for e in shipment.entries}
    cited: dict[int, tuple[CitedStatus, ...]] = {}

    def observe(item: VerifiedEntry, state: contracts.MemoryState) -> None:
        if item.log_index not in own:
            return
        statuses = []
        for cert_id in cert_ids:
            record = contracts.certificate(state, cert_id)
            why = "unknown" if record is None else not_in_force_reason(record, item.time)
            statuses.append(CitedStatus(cert_id, why is None, why or "in force"))
        cited[item.log_index] = tuple(statuses)

    entries = merge(shipment.entries, *(certificate_entries(h.entries) for h in certificates))
    state = replay(genesis, entries, observe=observe)
    record = contracts.shipment(state, ucr)
    return ShipmentView(ucr, record, timeline(genesis, shipment.entries), cited)
