"""Human output with rich (colour only on a terminal) and the JSON documents of
docs/cli.md. The verdict always comes first, in one line; the proof comes last."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ledger.bundle import VerifiedHistory
from ledger.genesis import Genesis
from node.client.agree import Proven
from node.client.heads import Head, format_time
from node.client.reading import Obtained
from node.client.verdicts import CertificateVerdict, ShipmentView, TimelineItem

if TYPE_CHECKING:  # the offline path loads no network code
    from node.client.status import StatusReport

__all__ = [
    "history_json",
    "proof_json",
    "render_history",
    "render_proof",
    "render_status",
    "render_verdict",
    "verdict_json",
]

_STYLE = {
    "IN_FORCE": "bold green",
    "SUSPENDED": "bold yellow",
    "EXPIRED": "bold yellow",
    "NOT_YET_VALID": "bold yellow",
}


def _member(genesis: Genesis, member_id: str) -> str:
    member = genesis.member(member_id)
    return f"{member.name} ({member_id})" if member is not None else member_id


def _plural(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


# -- JSON --------------------------------------------------------------------------------


def proof_json(genesis: Genesis, obtained: Obtained) -> dict[str, Any]:
    proven = obtained.proven
    return {
        "source": proven.node,
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.hash_hex,
        "head": proven.head.to_json(),
        "signers": list(obtained.bundle.signers),
        "validators": genesis.validators.n,
        "quorum": genesis.validators.quorum,
        "entries_checked": obtained.entries_checked,
        "subjects": [
            {"subject": h.subject, "exists": h.exists, "entries": len(h.entries)}
            for h in obtained.bundle.histories
        ],
        "checkpoint": proven.checkpoint.to_json() if proven.checkpoint else None,
        "lagging": [{"node": node, "head": head.to_json()} for node, head in proven.lagging],
        "warnings": list(proven.warnings),
    }


def verdict_json(
    genesis: Genesis, verdict: CertificateVerdict, obtained: Obtained, exit_code: int
) -> dict[str, Any]:
    return {
        "command": "verify",
        "exit_code": exit_code,
        "cert_id": verdict.cert_id,
        "verdict": verdict.verdict,
        "headline": verdict.headline,
        "at": verdict.at,
        "at_utc": format_time(verdict.at),
        "document": verdict.document,
        "certificate": dict(verdict.record) if verdict.record is not None else None,
        "recognitions": [
            {"member": m, "name": name, "arrangement": arrangement}
            for m, name, arrangement in verdict.recognitions
        ],
        "timeline": [item.to_json() for item in verdict.timeline],
        "proof": proof_json(genesis, obtained),
    }


def history_json(
    genesis: Genesis,
    histories: Sequence[VerifiedHistory],
    view: ShipmentView | None,
    obtained: Obtained,
    timelines: Mapping[str, Sequence[TimelineItem]],
) -> dict[str, Any]:
    subjects = []
    for history in histories:
        item: dict[str, Any] = {
            "subject": history.subject,
            "exists": history.exists,
            "timeline": [t.to_json() for t in timelines[history.subject]],
        }
        if view is not None and history.subject == f"shipment/{view.ucr}":
            item["record"] = dict(view.record) if view.record is not None else None
            for entry in item["timeline"]:
                entry["cited"] = [
                    {"cert_id": c.cert_id, "in_force": c.in_force, "status": c.why}
                    for c in view.cited.get(entry["log_index"], ())
                ]
        subjects.append(item)
    return {
        "command": "history",
        "exit_code": 0,
        "subjects": subjects,
        "proof": proof_json(genesis, obtained),
    }


# -- human ---------------------------------------------------------------------------------


def render_verdict(
    console: Console,
    genesis: Genesis,
    verdict: CertificateVerdict,
    obtained: Obtained,
    *,
    quiet: bool,
    at_given: bool = False,
) -> None:
    style = _STYLE.get(verdict.verdict, "bold red")
    console.print(f"[{style}]{escape(verdict.headline)}[/]")
    head = obtained.proven.head
    when = f"; judged at {format_time(verdict.at)} (--at)" if at_given else ""
    console.print(f"  as of {format_time(head.time)}, height {head.height}{when}")
    if quiet:
        return
    if verdict.record is not None:
        _certificate_fields(console, genesis, verdict)
    if verdict.timeline:
        console.print()
        _recent_events(console, verdict)
    console.print()
    render_proof(console, genesis, obtained)


# The verdict shows the latest events; `customs history` (and --json) has them all.
_RECENT = 10


def _recent_events(console: Console, verdict: CertificateVerdict) -> None:
    items = verdict.timeline
    shown = items[-_RECENT:]
    title = f"[bold]History of cert/{escape(verdict.cert_id)}[/] (verified)"
    if len(items) > len(shown):
        title += (
            f": the latest {len(shown)} of {len(items)} entries "
            f"(customs history cert/{escape(verdict.cert_id)} lists all)"
        )
    console.print(title)
    width = max(len(item.author_name) + len(item.author) for item in shown) + 3
    lines = [
        f"  {format_time(item.time).removesuffix(' UTC')}  "
        f"{f'{item.author_name} ({item.author})':<{width}}  {item.kind:<15} "
        f"height {item.height:<7} {item.details}"
        for item in shown
    ]
    # One print of plain lines: a rich Table measures every cell, ~1 ms a row here.
    console.print(escape("\n".join(lines)), soft_wrap=True)


def _certificate_fields(console: Console, genesis: Genesis, verdict: CertificateVerdict) -> None:
    record = verdict.record
    assert record is not None
    console.print()
    console.print(f"[bold]Certificate {escape(verdict.cert_id)}[/]")
    rows: list[tuple[str, str]] = [
        ("type", record["type"]),
        ("issuer", f"{_member(genesis, record['issuer'])}, issued in {record['issued_in']}"),
        ("holder", record["holder"]),
        ("origin", record["origin"]),
    ]
    if "destination" in record:
        rows.append(("destination", record["destination"]))
    if "hs_codes" in record:
        rows.append(("HS codes", " ".join(record["hs_codes"])))
    rows.append(
        ("valid", f"{format_time(record['valid_from'])} to {format_time(record['valid_until'])}")
    )
    rows.append(("status", f"{record['status']}, version {record['version']}"))
    document = record["document_sha256"]
    if verdict.document == "match":
        document += " (matches the file given)"
    elif verdict.document == "mismatch":
        document += " (does NOT match the file given)"
    rows.append(("document", document))
    for name, value in rows:
        console.print(f"  {name:<12} {escape(str(value))}")
    if record["type"] == "aeo":
        if verdict.recognitions:
            console.print("  [bold]recognised by[/]")
            for member, name, arrangement in verdict.recognitions:
                console.print(f"    {escape(name)} ({member}) under {escape(arrangement)}")
        else:
            console.print("  recognised by no partner administration yet")


def _timeline_table(
    title: str, items: Sequence[TimelineItem], cited: Mapping[int, Sequence[Any]] | None = None
) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("administration")
    table.add_column("kind", no_wrap=True)
    table.add_column("details")
    table.add_column("height", justify="right")
    if cited is not None:
        table.add_column("cited certificates")
    for item in items:
        row = [
            format_time(item.time).removesuffix(" UTC"),
            f"{item.author_name} ({item.author})",
            item.kind,
            item.details,
            str(item.height),
        ]
        if cited is not None:
            row.append(
                ", ".join(f"{c.cert_id}: {c.why}" for c in cited.get(item.log_index, ())) or "—"
            )
        table.add_row(*(escape(cell) for cell in row))
    return table


def render_proof(console: Console, genesis: Genesis, obtained: Obtained) -> None:
    proven: Proven = obtained.proven
    head: Head = proven.head
    signers = obtained.bundle.signers
    validators = genesis.validators
    console.print("[bold]How it was proven[/] (trusting only the genesis file)")
    console.print(
        f"  head      height {head.height}, {format_time(head.time)}, header "
        f"{head.hash.hex()[:16]}…"
    )
    console.print(
        f"  signed by {', '.join(signers)}: {len(signers)} of {validators.n} validators "
        f"(a quorum is {validators.quorum}), every signature checked"
    )
    for history in obtained.bundle.histories:
        if history.exists:
            console.print(
                f"  {escape(history.subject)}: {_plural(len(history.entries), 'entry')}, each "
                "signed by "
                "its author and included in the log; the count and hash chain match the "
                "state map: nothing omitted"
            )
        else:
            console.print(f"  {escape(history.subject)}: proven absent from the state map")
    console.print(f"  source    {escape(proven.node)}")
    if proven.checkpoint is not None:
        console.print(f"  extends the head this client remembered: {proven.checkpoint.describe()}")
    for node, lag in proven.lagging:
        console.print(f"  [yellow]lagging[/]  {escape(node)} at {lag.describe()}")
    for warning in proven.warnings:
        console.print(f"  [yellow]warning[/]  {escape(warning)}")


def render_history(
    console: Console,
    genesis: Genesis,
    histories: Sequence[VerifiedHistory],
    view: ShipmentView | None,
    obtained: Obtained,
    timelines: Mapping[str, Sequence[TimelineItem]],
    *,
    quiet: bool,
) -> None:
    for history in histories:
        if not history.exists:
            console.print(f"[bold red]UNKNOWN[/] — {escape(history.subject)} is proven absent")
            continue
        is_shipment = view is not None and history.subject == f"shipment/{view.ucr}"
        if is_shipment and view is not None and view.record is not None:
            record = view.record
            console.print(
                f"[bold]{escape(history.subject)}[/]: {record['status']}, "
                f"{escape(record['origin_port'])} to {escape(record['destination_port'])}, "
                f"declared by {_member(genesis, record['declared_by'])}"
            )
        if quiet:
            continue
        table = _timeline_table(
            f"History of {history.subject} (verified)",
            timelines[history.subject],
            view.cited if is_shipment and view is not None else None,
        )
        console.print(table)
    if not quiet:
        console.print()
        render_proof(console, genesis, obtained)


def render_status(console: Console, genesis: Genesis, report: StatusReport, *, quiet: bool) -> None:
    head = report.proven.head
    console.print(
        f"[bold]{escape(genesis.chain_id)}[/]: newest verified head height {head.height}, "
        f"{format_time(head.time)}, header {head.hash.hex()[:16]}… (from {report.proven.node})"
    )
    if quiet:
        return
    validators = genesis.validators
    console.print(
        f"  genesis {genesis.hash_hex}: {len(genesis.members)} members, {validators.n} "
        f"validators ({', '.join(validators.ids)}), a quorum is {validators.quorum}"
    )
    table = Table(title_justify="left")
    for column in ("member", "node", "height", "head", "head time (UTC)", "peers", "syncing"):
        table.add_column(column, no_wrap=True)
    for row in report.rows:
        data = row.to_json(genesis)
        if not data["reachable"]:
            table.add_row("—", escape(row.url), f"[red]unreachable: {escape(row.error or '')}[/]")
            continue
        head_time = data["head_time"]
        table.add_row(
            escape(str(data["member"])),
            escape(row.url),
            str(data["height"]),
            escape(str(data["head_hash"])[:16]),
            format_time(head_time).removesuffix(" UTC") if isinstance(head_time, int) else "—",
            f"{data['peers_connected']}/{data['peers']}",
            "yes" if data["syncing"] else "no",
        )
    console.print(table)
    for node, lag in report.proven.lagging:
        console.print(f"  [yellow]lagging[/]  {escape(node)} at {lag.describe()}")
    for warning in report.proven.warnings:
        console.print(f"  [yellow]warning[/]  {escape(warning)}")
