"""Valid example bodies, for documentation, tests and benchmarks (pure data builders).

Every builder returns a fresh dict that passes its kind's rules 7-9 for an author with
the right role and jurisdiction; callers change fields to make invalid variants.
"""

from __future__ import annotations

from typing import Any

from stdnum import iso6346

__all__ = ["DOCUMENT", "cert_issue", "container", "declare", "event"]

DOCUMENT = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
DAY_MS = 86_400_000


def container(owner: str = "MSC", serial: int = 1) -> str:
    """An ISO 6346 freight container number (category U) with its check digit."""
    head = f"{owner}U{serial:06d}"
    return head + str(iso6346.calc_check_digit(head))


def cert_issue(
    cert_id: str,
    country: str = "CN",
    *,
    type_: str = "origin",
    destination: str = "DE",
    hs_codes: tuple[str, ...] = ("851712",),
    valid_from: int = 1_767_225_600_000,
    valid_until: int = 1_767_225_600_000 + 365 * DAY_MS,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cert_id": cert_id,
        "type": type_,
        "issued_in": country,
        "holder": "Shenzhen Example Electronics Co.",
        "origin": country,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "document_sha256": DOCUMENT,
    }
    if type_ != "aeo":
        body["destination"] = destination
        body["hs_codes"] = list(hs_codes)
    return body


def declare(
    ucr: str,
    *,
    origin_port: str = "CNSHA",
    destination_port: str = "DEHAM",
    consignee_country: str = "DE",
    containers: tuple[str, ...] = (),
    hs_codes: tuple[str, ...] = ("851712",),
    certificates: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "ucr": ucr,
        "exporter": "Shenzhen Example Electronics Co.",
        "consignee_country": consignee_country,
        "origin_port": origin_port,
        "destination_port": destination_port,
        "containers": list(containers),
        "hs_codes": list(hs_codes),
        "certificates": list(certificates),
    }


def event(ucr: str, name: str, location: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ucr": ucr, "event": name, "location": location}
    if name == "inspected":
        body["result"] = "compliant"
    if name in ("held", "seized"):
        body["reason"] = "risk profile match"
    body.update(extra)
    return body
