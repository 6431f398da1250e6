"""``customs verify``, ``history`` and ``proof``: a verified bundle, from nodes or a file,
turned into a verdict, a timeline or a saved proof."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from contracts.schema import CERT_ID
from ledger.bundle import MAX_BUNDLE_BYTES, VerifiedBundle, VerifiedHistory
from ledger.genesis import Genesis
from node.client.agree import Proven, check_bundle, reconcile
from node.client.checkpoints import CheckpointStore
from node.client.errors import UsageError, VerificationFailed
from node.client.files import read_file
from node.client.heads import Head
from node.client.verdicts import CertificateVerdict, ShipmentView, judge_certificate, shipment_view

__all__ = [
    "Obtained",
    "Reader",
    "cert_subject",
    "history_subjects",
]

_MAX_DOCUMENT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Obtained:
    bundle: VerifiedBundle
    data: bytes
    proven: Proven

    @property
    def entries_checked(self) -> int:
        return len({e.log_index for h in self.bundle.histories for e in h.entries})


def cert_subject(cert_id: str) -> str:
    cert_id = cert_id.removeprefix("cert/")
    if CERT_ID.fullmatch(cert_id) is None:
        raise UsageError(
            f"{cert_id!r} is not a certificate id (A-Z, 0-9, '.', '/', '-'; 3 to 64 characters)"
        )
    return f"cert/{cert_id}"


def history_subjects(name: str) -> list[str]:
    """``cert/ID`` or ``shipment/UCR`` as given; a bare name is asked for as both, and the
    bundle proves which one exists."""
    kind, sep, rest = name.partition("/")
    if sep and kind in ("cert", "shipment"):
        if not rest or len(name) > 128 or not name.isprintable():
            raise UsageError(f"{name!r} is not a subject")
        return [name]
    if not name or len(name) > 100 or not name.isprintable():
        raise UsageError(f"{name!r} is not a certificate id or a UCR")
    return [f"cert/{name}", f"shipment/{name}"]


class Reader:
    """Gets verified bundles for one command: online from ``nodes`` or from a file."""

    def __init__(
        self,
        genesis: Genesis,
        checkpoints: CheckpointStore,
        *,
        now: int,
        max_age_ms: int | None,
        nodes: Sequence[object] = (),
        bundle_path: Path | None = None,
    ) -> None:
        self.genesis = genesis
        self.checkpoints = checkpoints
        self.now = now
        self.max_age_ms = max_age_ms
        self.nodes = nodes
        self.bundle_path = bundle_path

    def obtain(self, subjects: Sequence[str], *, as_of: int | None = None) -> Obtained:
        if self.bundle_path is not None:
            return self._from_file(self.bundle_path, subjects, as_of)
        return self._from_nodes(subjects, as_of)

    def _from_file(self, path: Path, subjects: Sequence[str], as_of: int | None) -> Obtained:
        data = read_bundle_file(path)
        bundle = check_bundle(data, self.genesis, str(path))
        head = Head.of(bundle.header, bundle.signers)
        proven = reconcile(
            [(str(path), head)],
            checkpoints=self.checkpoints,
            prove=None,
            now=self.now,
            max_age_ms=self.max_age_ms,
            as_of=as_of,
        )
        return Obtained(bundle, data, proven)

    def _from_nodes(self, subjects: Sequence[str], as_of: int | None) -> Obtained:
        # Imported here: the offline path loads no network code at all.
        from node.client.gather import fetch_bundles, prover
        from node.client.transport import NodeClient

        nodes = [n for n in self.nodes if isinstance(n, NodeClient)]
        answers, warnings = fetch_bundles(nodes, self.genesis, subjects)
        proven = reconcile(
            [(a.node, a.head) for a in answers],
            checkpoints=self.checkpoints,
            prove=prover(nodes),
            now=self.now,
            max_age_ms=self.max_age_ms,
            warnings=warnings,
            as_of=as_of,
        )
        best = next(a for a in answers if a.node == proven.node)
        return Obtained(best.bundle, best.data, proven)

    # -- the commands' reads ---------------------------------------------------------

    def verify(
        self, cert_id: str, *, at: int | None, document: Path | None
    ) -> tuple[CertificateVerdict, Obtained]:
        subject = cert_subject(cert_id)
        contents = read_document(document) if document is not None else None
        obtained = self.obtain([subject], as_of=at)
        history = _history(obtained.bundle, subject, self.bundle_path)
        moment = self.now if at is None else at
        verdict = judge_certificate(self.genesis, history, at=moment, document=contents)
        return verdict, obtained

    def history(self, name: str) -> tuple[list[VerifiedHistory], ShipmentView | None, Obtained]:
        """The histories that exist among ``name``'s subjects; for a shipment, also its
        replayed view with the status of every certificate it cites."""
        subjects = history_subjects(name)
        obtained = self.obtain(subjects)
        subjects = _covered(obtained.bundle, subjects, self.bundle_path)
        shipment = _existing_shipment(obtained.bundle, subjects)
        if shipment is not None:
            cited = cited_certificates(shipment)
            if cited and self.bundle_path is None:
                obtained = self.obtain([*subjects, *(f"cert/{c}" for c in cited)])
                shipment = _existing_shipment(obtained.bundle, subjects)
                assert shipment is not None
        found = [
            obtained.bundle.history(s)
            for s in subjects
            if obtained.bundle.history(s).exists or len(subjects) == 1
        ]
        if not found:
            found = [obtained.bundle.history(subjects[0])]
        view = None
        if shipment is not None:
            held = {h.subject: h for h in obtained.bundle.histories}
            wanted = [f"cert/{c}" for c in cited_certificates(shipment)]
            # Replaying a declaration needs every certificate it cites; a bundle saved
            # without them still shows the shipment's verified timeline.
            if all(c in held for c in wanted):
                view = shipment_view(self.genesis, shipment, [held[c] for c in wanted])
        return found, view, obtained

    def proof(self, names: Sequence[str]) -> Obtained:
        """A verified bundle for ``names`` (bare names as both kinds), with every
        certificate a listed shipment cites, so the file answers ``history`` offline."""
        subjects = list(dict.fromkeys(s for name in names for s in history_subjects(name)))
        obtained = self.obtain(subjects)
        cited = [
            f"cert/{c}"
            for h in obtained.bundle.histories
            if h.subject.startswith("shipment/") and h.exists
            for c in cited_certificates(h)
        ]
        extra = [c for c in dict.fromkeys(cited) if c not in subjects]
        if extra:
            obtained = self.obtain([*subjects, *extra])
        return obtained


def cited_certificates(shipment: VerifiedHistory) -> list[str]:
    for item in shipment.entries:
        if item.entry.entry.kind == "shipment.declare":
            return list(item.entry.entry.body["certificates"])
    return []


def _existing_shipment(bundle: VerifiedBundle, subjects: Sequence[str]) -> VerifiedHistory | None:
    for subject in subjects:
        if subject.startswith("shipment/") and bundle.history(subject).exists:
            return bundle.history(subject)
    return None


def _covered(bundle: VerifiedBundle, subjects: Sequence[str], path: Path | None) -> list[str]:
    """The asked-for subjects the bundle proves (a file may hold only one of a bare
    name's two readings)."""
    held = {h.subject for h in bundle.histories}
    covered = [s for s in subjects if s in held]
    if not covered:
        _history(bundle, subjects[0], path)  # raises, naming what is missing
    return covered


def _history(bundle: VerifiedBundle, subject: str, path: Path | None) -> VerifiedHistory:
    try:
        return bundle.history(subject)
    except KeyError:
        where = f"the bundle {path}" if path is not None else "the node's bundle"
        raise VerificationFailed("subject", f"{where} holds no proof for {subject}") from None


def read_bundle_file(path: Path) -> bytes:
    return read_file(path, MAX_BUNDLE_BYTES, "bundle", judge_size=True)


def read_document(path: Path) -> bytes:
    return read_file(path, _MAX_DOCUMENT_BYTES, "document")
