"""The demo's story, one method per step: who acts, what they send, what the ledger
answers, and a check that it answered as the rules say it must.

Reads go through ``customs`` exactly as an official would run it; writes through
``customs submit`` (the node signs as its administration) or, where the point is the
wire itself (a forged signature, a stream of entries), the node's HTTP API.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo_customs import Customs, Result
from demo_narrate import Narrator, StepFailed
from demo_network import DemoNetwork, http_json

from tests import samples

__all__ = ["STEPS", "Scenario"]

STEPS = 8
DAY_MS = 86_400_000
VALIDATORS = ["CN", "DE", "NL", "SG"]
MRA = "EU-China AEO mutual recognition (2014)"
EXPORTER = "Shenzhen Example Electronics Co."
HS_PHONES, HS_LAPTOPS = "851712", "847130"
FLOW_ENTRIES = 20
Event = tuple[str, dict[str, Any]]  # a shipment event's name and its extra body fields


def _short(hex_text: str) -> str:
    return hex_text[:16] + "…"


@dataclass
class Tally:
    committed: int = 0
    refused: Counter[str] = field(default_factory=Counter)


@dataclass
class Scenario:
    net: DemoNetwork
    customs: Customs
    say: Narrator
    work: Path
    tally: Tally = field(default_factory=Tally)
    year: int = field(default_factory=lambda: time.gmtime().tm_year)
    final_heads: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.aeo = f"AEO-CN-{self.year}-0042"
        self.origin_1 = f"CO-CN-{self.year}-000123"
        self.origin_2 = f"CO-CN-{self.year}-000124"
        self.ucr_1 = f"6CN-SHA-{self.year}-0001"
        self.ucr_2 = f"6CN-SHA-{self.year}-0002"
        self.revoked_at = 0
        self.revocation_id = ""

    # -- helpers -------------------------------------------------------------------------

    def url(self, member_id: str) -> str:
        return self.net[member_id].url

    def reader(self, member_id: str) -> list[str]:
        """An official asks their own node and one partner's: answers are checked, so
        a second node only adds evidence."""
        partner = "NL" if member_id != "NL" else "DE"
        return [self.url(member_id), self.url(partner)]

    def write(self, member_id: str, kind: str, body: dict[str, Any], note: str) -> Result:
        self.say.say(f"{self.net[member_id].name} ({member_id}) submits {kind}: {note}")
        result = self.customs.submit(
            kind, body, node=self.url(member_id), token_file=self.net[member_id].token_file
        )
        self.tally.committed += 1
        self.say.answer(f"committed at height {result.document['height']}")
        return result

    def refused(self, member_id: str, kind: str, body: dict[str, Any], code: str) -> Result:
        node = self.net[member_id]
        result = self.customs.submit(
            kind, body, node=node.url, token_file=node.token_file, expect=(1,)
        )
        got = result.error.get("check")
        if got != code:
            raise StepFailed(f"{kind} by {member_id}: refused with {got!r}, expected {code!r}")
        self.tally.refused[code] += 1
        message = str(result.error["message"]).removeprefix(f"{code}: ")
        self.say.refused(f"{code}: {message}")
        return result

    def verify(self, cert_id: str, member_id: str, *extra: str | Path, expect: str) -> Result:
        code = 0 if expect == "IN_FORCE" else 1
        result = self.customs.run(
            "verify", cert_id, *extra, nodes=self.reader(member_id), expect=(code,)
        )
        if result.document["verdict"] != expect:
            raise StepFailed(f"verify {cert_id}: {result.document['verdict']}, expected {expect}")
        self.say.answer(result.document["headline"])
        return result

    def events(self, member_id: str, ucr: str, location: str, *events: str | Event) -> None:
        """One administration recording events at one place, in order, each committed
        before the next is sent (the lifecycle allows them only in that order)."""
        steps = [(e, {}) if isinstance(e, str) else e for e in events]
        names = ", ".join(n + (f" ({x['reason']})" if "reason" in x else "") for n, x in steps)
        node = self.net[member_id]
        self.say.say(f"{node.name} ({member_id}) records {ucr} {names} at {location}")
        heights = []
        for name, extra in steps:
            result = self.customs.submit(
                "shipment.event", samples.event(ucr, name, location, **extra),
                node=node.url, token_file=node.token_file,
            )  # fmt: skip
            self.tally.committed += 1
            heights.append(str(result.document["height"]))
        label = "height" if len(heights) == 1 else "heights"
        self.say.answer(f"committed at {label} {', '.join(heights)}")

    def document(self, cert_id: str, text: str) -> tuple[Path, str]:
        """The certificate's paper copy, whose SHA-256 the ledger records."""
        path = self.work / f"{cert_id}.txt"
        path.write_text(text)
        return path, hashlib.sha256(path.read_bytes()).hexdigest()

    # -- 1 -------------------------------------------------------------------------------

    def step_1_network(self, base_port: int | None) -> None:
        self.say.step(1, "Five administrations start a network")
        self.net.create(base_port)
        self.say.say(
            f"customs-node testnet wrote 5 members to {self.net.root} "
            f"(genesis {_short(self.net.genesis_hash)})"
        )
        self.net.start()
        self.say.say("started CN, NL, DE, SG (validators) and US (member): customs-node run x5")
        # Height 1 is the network's first block; after it an idle chain is quiet until an
        # entry arrives or the minute's heartbeat is due (empty_block_interval_ms).
        self.net.wait_until(lambda: min(self.net.heights().values()) >= 1, "height 1", 20)
        status = self.customs.run("status", nodes=[n.url for n in self.net.nodes.values()])
        doc = status.document
        nodes = doc["nodes"]
        if doc["members"] != 5 or doc["validators"] != VALIDATORS:
            raise StepFailed(f"status: {doc['members']} members, validators {doc['validators']}")
        if not all(n["reachable"] and n["same_genesis"] for n in nodes) or len(nodes) != 5:
            raise StepFailed(f"status: not every node reachable on one genesis: {nodes}")
        if doc["genesis_hash"] != self.net.genesis_hash:
            raise StepFailed("status: a genesis other than the one testnet wrote")
        self.say.answer(
            f"customs status: 5 nodes reachable, 4 validators ({', '.join(VALIDATORS)}), "
            f"one genesis {_short(doc['genesis_hash'])}, verified head height "
            f"{doc['head']['height']}"
        )

    # -- 2 -------------------------------------------------------------------------------

    def step_2_certificates(self) -> None:
        self.say.step(2, "China Customs issues an AEO authorisation and certificates of origin")
        today = int(time.time() * 1000) // DAY_MS * DAY_MS
        valid = {"valid_from": today - 30 * DAY_MS, "valid_until": today + 365 * DAY_MS}
        aeo = {**samples.cert_issue(self.aeo, "CN", type_="aeo"), **valid, "holder": EXPORTER}
        _, aeo["document_sha256"] = self.document(self.aeo, f"AEO authorisation {self.aeo}\n")
        origins = []
        for cert_id, hs in (
            (self.origin_1, (HS_PHONES, HS_LAPTOPS)),
            (self.origin_2, (HS_LAPTOPS,)),
        ):
            body = {**samples.cert_issue(cert_id, "CN", hs_codes=hs), **valid, "holder": EXPORTER}
            text = f"Certificate of origin {cert_id}\nexporter {EXPORTER}\nHS {' '.join(hs)}\n"
            _, body["document_sha256"] = self.document(cert_id, text)
            origins.append(body)
        self.say.say(
            f"CN issues {self.aeo} (AEO, {EXPORTER}) and certificates of origin "
            f"{self.origin_1} (HS {HS_PHONES} smartphones, {HS_LAPTOPS} laptops) and "
            f"{self.origin_2} (HS {HS_LAPTOPS}), both for consignments to DE"
        )
        cn = (self.url("CN"), self.net["CN"].token_file)
        results = self.customs.submit_together(
            [("cert.issue", body, *cn) for body in (aeo, *origins)]
        )
        self.tally.committed += len(results)
        heights = sorted(r.document["height"] for r in results)
        self.say.answer(f"3 entries committed at heights {', '.join(map(str, heights))}")
        self.say.say(f"NL and DE recognise {self.aeo} under the {MRA}")
        recognise = {"cert_id": self.aeo, "arrangement": MRA}
        results = self.customs.submit_together(
            [
                ("cert.recognize", recognise, self.url(m), self.net[m].token_file)
                for m in ("NL", "DE")
            ]
        )
        self.tally.committed += len(results)
        self.say.answer(
            "committed at heights " + ", ".join(str(r.document["height"]) for r in results)
        )

    # -- 3 -------------------------------------------------------------------------------

    def step_3_voyage(self) -> None:
        self.say.step(3, "A consignment travels Shanghai -> Rotterdam -> Hamburg and is cleared")
        containers = (samples.container("MSC", 123456), samples.container("TGH", 987654))
        declaration = samples.declare(
            self.ucr_1, containers=containers, hs_codes=(HS_PHONES, HS_LAPTOPS),
            certificates=(self.origin_1, self.aeo),
        )  # fmt: skip
        self.write(
            "CN", "shipment.declare", declaration,
            f"{self.ucr_1}, containers {' '.join(containers)}, "
            f"citing {self.origin_1} and {self.aeo}",
        )  # fmt: skip
        self.events("CN", self.ucr_1, "CNSHA", ("loaded", {"containers": list(containers)}),
                    "departed")  # fmt: skip
        self.events("NL", self.ucr_1, "NLRTM", "arrived", "departed")
        self.events("DE", self.ucr_1, "DEHAM", "arrived")
        self.say.say("DE's official at Hamburg checks the paper certificate: customs verify")
        paper = self.work / f"{self.origin_1}.txt"
        self.verify(self.origin_1, "DE", "--document", paper, expect="IN_FORCE")
        result = self.verify(self.aeo, "DE", expect="IN_FORCE")
        recognised = {r["member"]: r["arrangement"] for r in result.document["recognitions"]}
        if recognised != {"NL": MRA, "DE": MRA}:
            raise StepFailed(f"verify {self.aeo}: recognitions {recognised}")
        self.say.answer("recognised by Dutch Customs (NL) and German Customs (DE) under " + MRA)
        self.events(
            "DE", self.ucr_1, "DEHAM", ("held", {"reason": "routine check of a first import"}),
            ("inspected", {"containers": [containers[1]]}), "released", "cleared",
        )  # fmt: skip
        history = self.customs.run("history", f"shipment/{self.ucr_1}", nodes=self.reader("DE"))
        (shipment,) = history.document["subjects"]
        if shipment["record"]["status"] != "cleared" or len(shipment["timeline"]) != 10:
            raise StepFailed(f"history {self.ucr_1}: {shipment['record']['status']}")
        self.say.answer(f"customs history: {self.ucr_1} cleared, 10 verified events")

    # -- 4 -------------------------------------------------------------------------------

    def step_4_revocation(self) -> None:
        self.say.step(4, "A certificate is revoked mid-voyage; the goods are stopped at the border")
        containers = (samples.container("MSC", 223344),)
        declaration = samples.declare(
            self.ucr_2, containers=containers, hs_codes=(HS_LAPTOPS,),
            certificates=(self.origin_2, self.aeo),
        )  # fmt: skip
        self.write("CN", "shipment.declare", declaration, f"{self.ucr_2}, citing {self.origin_2}")
        self.events("CN", self.ucr_2, "CNSHA", "loaded", "departed")
        reason = "origin verification found the laptops were assembled outside China"
        revoked = self.write(
            "CN", "cert.revoke", {"cert_id": self.origin_2, "reason": reason},
            f"{self.origin_2}, reason: {reason}",
        )  # fmt: skip
        self.revoked_at = int(revoked.document["block_time"])
        self.revocation_id = str(revoked.document["id"])
        self.events("DE", self.ucr_2, "DEHAM", "arrived")
        self.say.say(f"DE's official at Hamburg: customs verify {self.origin_2}")
        result = self.verify(self.origin_2, "DE", expect="REVOKED")
        if "China Customs" not in result.document["headline"]:
            raise StepFailed(f"verify {self.origin_2}: the revoker is not named")
        self.say.say(f"DE tries to clear {self.ucr_2} anyway")
        self.refused("DE", "shipment.event", samples.event(self.ucr_2, "cleared", "DEHAM"),
                     "not_in_force")  # fmt: skip
        self.events(
            "DE", self.ucr_2, "DEHAM", ("held", {"reason": f"{self.origin_2} revoked"}),
            ("seized", {"reason": "false declaration of origin"}),
        )  # fmt: skip
        before = self.revoked_at - 1
        self.say.say(
            f"was it in force 1 ms before the revocation's block time? customs verify --at {before}"
        )
        self.verify(self.origin_2, "DE", "--at", str(before), expect="IN_FORCE")

    # -- 5 -------------------------------------------------------------------------------

    def step_5_misbehaviour(self) -> None:
        self.say.step(5, "Misbehaviour is refused with its code, and nothing changes")
        baseline = self._cert_view(self.origin_1)
        self._forged_signature()
        self._check_unchanged(baseline)
        self.say.say(f"Dutch Customs (NL) tries to revoke CN's {self.origin_1}")
        self.refused("NL", "cert.revoke", {"cert_id": self.origin_1, "reason": "not ours"},
                     "not_permitted")  # fmt: skip
        self._check_unchanged(baseline)
        bad = samples.container("MSC", 555555)
        bad = bad[:-1] + str((int(bad[-1]) + 1) % 10)
        self.say.say(f"CN declares a shipment with container {bad} (wrong ISO 6346 check digit)")
        declaration = samples.declare(
            f"6CN-SHA-{self.year}-0003", containers=(bad,), certificates=(self.origin_1,)
        )
        self.refused("CN", "shipment.declare", declaration, "invalid_identifier")
        self._check_unchanged(baseline)
        self.say.ok(f"{self.origin_1} still IN FORCE with the same verified history after each")

    def _forged_signature(self) -> None:
        """CN's genuine signed revocation, re-aimed at another certificate: the
        signature no longer covers the body, so no node takes it, even from an operator
        holding a node's API token."""
        status = http_json("GET", f"{self.url('CN')}/v1/entries/{self.revocation_id}").document
        block = http_json("GET", f"{self.url('CN')}/v1/blocks/{status['height']}").document
        wire = next(e for e in block["entries"] if e["id"] == self.revocation_id)
        forged = {"entry": wire["entry"], "sig": wire["sig"]}
        forged["entry"]["body"]["cert_id"] = self.origin_1
        self.say.say(
            f"someone re-aims CN's signed revocation at {self.origin_1} and posts it to "
            "US's node (POST /v1/entries)"
        )
        url = f"{self.url('US')}/v1/entries"
        self.say.http("POST", url, "Authorization: Bearer <US/api.token>")
        token = self.net["US"].token_file.read_text().strip()
        answer = http_json("POST", url, forged, token=token)
        code = answer.document.get("code")
        if answer.status != 400 or code != "bad_signature":
            raise StepFailed(f"forged entry: HTTP {answer.status} {answer.document}")
        self.tally.refused[code] += 1
        self.say.refused(f"HTTP 400 {code}: {answer.document.get('message')}")

    def _cert_view(self, cert_id: str) -> tuple[str, list[str]]:
        result = self.customs.run("verify", cert_id, nodes=self.reader("DE"))
        return result.document["verdict"], [e["entry_id"] for e in result.document["timeline"]]

    def _check_unchanged(self, baseline: tuple[str, list[str]]) -> None:
        now = self._cert_view(self.origin_1)
        if now != baseline:
            raise StepFailed(f"{self.origin_1} changed: {baseline} -> {now}")

    # -- 6 -------------------------------------------------------------------------------

    def step_6_crash(self) -> None:
        self.say.step(6, "A validator crashes (SIGKILL) while entries flow, and catches up")
        flow = _Flow(self.url("US"), self.net["US"].token_file.read_text().strip(), self.year)
        self.say.say(
            f"US posts {FLOW_ENTRIES} export licences (HTTP POST /v1/submit), one every 100 ms"
        )
        self.say.http("POST", f"{self.url('US')}/v1/submit", "x20, Authorization: <US/api.token>")
        flow.start()
        flow.wait_posted(FLOW_ENTRIES // 4)
        down_at = self.net["SG"].height()
        self.net.kill("SG")
        self.say.say(f"kill -9 Singapore Customs (SG) at height {down_at}")
        flow.join()
        if flow.error:
            raise StepFailed(f"posting export licences: {flow.error}")
        self._wait_committed(flow.ids)
        self.tally.committed += len(flow.ids)
        others = self.net.heights(["CN", "NL", "DE", "US"])
        if min(others.values()) <= down_at:
            raise StepFailed(f"no progress without SG: {others}")
        self.say.answer(
            f"all {len(flow.ids)} committed without SG; heights "
            + ", ".join(f"{m} {h}" for m, h in others.items())
        )
        target = max(others.values())
        started = time.monotonic()
        self.net.start(["SG"])
        self.say.say(f"SG restarts from its store at height {self.net['SG'].height()}")
        self.net.wait_until(lambda: self.net["SG"].height() >= target, f"SG to reach {target}", 30)
        self.say.answer(
            f"SG caught up to height {self.net['SG'].height()} (past {target}) in "
            f"{time.monotonic() - started:.1f} s"
        )

    def _wait_committed(self, ids: list[str]) -> None:
        pending = set(ids)

        def done() -> bool:
            for entry_id in list(pending):
                answer = http_json("GET", f"{self.url('CN')}/v1/entries/{entry_id}")
                state = answer.document.get("status") if answer.status == 200 else None
                if state == "rejected":
                    raise StepFailed(f"export licence {entry_id} refused: {answer.document}")
                if state != "committed":
                    return False
                pending.discard(entry_id)
            return True

        self.net.wait_until(done, f"{len(ids)} export licences to commit", 30)

    # -- 7 -------------------------------------------------------------------------------

    def step_7_offline(self) -> None:
        self.say.step(7, "Offline: a proof bundle outlives the network")
        # Heads first: every verified head moves the official's checkpoint forward, and
        # a bundle older than the checkpoint is (rightly) refused as a rollback.
        self.final_heads = self._same_head()
        bundle = self.work / f"{self.origin_1}.clb"
        self.say.say(f"DE's official saves a proof: customs proof {self.origin_1} -o {bundle.name}")
        saved = self.customs.run("proof", self.origin_1, "-o", bundle, nodes=self.reader("DE"))
        self.say.answer(
            f"saved {saved.document['bytes']:,} bytes, verified at height "
            f"{saved.document['proof']['head']['height']}"
        )
        for member_id in self.net.nodes:
            self.net.stop(member_id)
        self.say.say("every node is stopped (SIGTERM)")
        self.customs.run("verify", self.origin_1, nodes=self.reader("DE"), expect=(4,))
        self.say.answer("customs verify online: exit 4, no node answered (never a revocation)")
        result = self.customs.run("verify", self.origin_1, "--bundle", bundle)
        if result.document["verdict"] != "IN_FORCE":
            raise StepFailed(f"verify --bundle: {result.document['verdict']}")
        self.say.answer(f"customs verify --bundle: {result.document['headline']}")
        tampered = self._tamper(bundle)
        self.say.say(f"one byte of the holder's name changed in a copy: {tampered.name}")
        result = self.customs.run("verify", self.origin_1, "--bundle", tampered, expect=(3,))
        check = result.error.get("check")
        self.say.answer(f"exit 3, VERIFICATION FAILED, check '{check}': {result.error['message']}")

    def _same_head(self) -> dict[str, Any]:
        """Every node's head from ``customs status``, asked until one poll sees them all
        at one height (blocks land up to every 200 ms while entries flow)."""
        nodes = [n.url for n in self.net.nodes.values()]
        for _ in range(10):
            doc = self.customs.run("status", nodes=nodes).document
            heads = {(n["height"], n["head_hash"]) for n in doc["nodes"]}
            if len(heads) == 1:
                return doc
        raise StepFailed(f"the nodes never showed one head: {sorted(heads)}")

    def _tamper(self, bundle: Path) -> Path:
        data = bytearray(bundle.read_bytes())
        at = data.find(EXPORTER.encode())
        if at < 0:
            raise StepFailed(f"{bundle}: the holder's name is not in the bundle")
        data[at] ^= 0x20  # "S" -> "s": a one-byte edit of the signed body
        tampered = bundle.with_name(bundle.stem + "-tampered.clb")
        tampered.write_bytes(bytes(data))
        return tampered

    # -- 8 -------------------------------------------------------------------------------

    def step_8_summary(self, started: float) -> float:
        self.say.step(STEPS, "Summary")
        refused = ", ".join(f"{code} {n}" for code, n in sorted(self.tally.refused.items()))
        self.say.say(
            f"entries committed: {self.tally.committed}; refused: "
            f"{sum(self.tally.refused.values())} ({refused})"
        )
        doc = self.final_heads
        node = doc["nodes"][0]
        self.say.say(
            f"before the stop, customs status saw all {len(doc['nodes'])} nodes at height "
            f"{node['height']} with one head {_short(node['head_hash'])} "
            f"(ledger log: {doc['head']['log_size']} entries)"
        )
        self.say.say(f"customs calls made: {self.customs.calls}, every outcome as expected")
        elapsed = time.monotonic() - started
        self.say.ok(f"demo passed in {elapsed:.1f} s")
        return elapsed


class _Flow(threading.Thread):
    """US writing export licences through its node's API at a steady pace."""

    def __init__(self, url: str, token: str, year: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.token = token
        self.year = year
        self.ids: list[str] = []
        self.error = ""
        self._posted = threading.Condition()

    def run(self) -> None:
        now = int(time.time() * 1000)
        for i in range(1, FLOW_ENTRIES + 1):
            body = samples.cert_issue(
                f"EL-US-{self.year}-{i:04d}", "US", type_="export_licence",
                hs_codes=(HS_LAPTOPS,), valid_from=now - DAY_MS, valid_until=now + 90 * DAY_MS,
            )  # fmt: skip
            body["holder"] = "Example Computing Inc."
            try:
                answer = http_json(
                    "POST", f"{self.url}/v1/submit", {"kind": "cert.issue", "body": body},
                    token=self.token,
                )  # fmt: skip
            except OSError as exc:
                self.error = str(exc)
                break
            if answer.status != 202:
                self.error = f"HTTP {answer.status}: {answer.document}"
                break
            with self._posted:
                self.ids.append(str(answer.document["id"]))
                self._posted.notify_all()
            time.sleep(0.1)
        with self._posted:
            self._posted.notify_all()

    def wait_posted(self, count: int) -> None:
        with self._posted:
            self._posted.wait_for(lambda: len(self.ids) >= count or not self.is_alive(), 10)
