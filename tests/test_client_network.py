"""``customs`` against a running 4-validator network of real ``customs-node`` processes:
the certificate's life seen online, several nodes, offline after the network stops,
rollback by a node serving a stale copy, and submissions that a node forgets.

Every ``customs`` call is a real process (the installed console script) with its own
checkpoint directory and no user configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests import samples
from tests.cluster import Cluster

CUSTOMS = Path(sys.executable).parent / "customs"
FAR = 2_082_758_400_000  # 2036-01-01
IDS = ["CN", "NL", "DE", "SG"]
_serial = iter(range(1, 1_000_000))


def cert_id() -> str:
    return f"CO-CN-NET-{next(_serial):04d}"


@dataclass
class Official:
    """One official's machine: a checkpoint directory, the genesis, the nodes it asks."""

    home: Path
    genesis: Path
    nodes: list[str]
    calls: list[list[str]] = field(default_factory=list)

    def run(self, *argv: str | Path, nodes: list[str] | None = None) -> tuple[int, str, str]:
        args = [str(a) for a in argv]
        chosen = self.nodes if nodes is None else nodes
        if ("--bundle" not in args and args[0] != "submit") or args[0] == "submit":
            args += [x for url in chosen for x in ("--node", url)]
        env = {
            **os.environ,
            "XDG_STATE_HOME": str(self.home / "state"),
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "CUSTOMS_GENESIS": str(self.genesis),
        }
        env.pop("CUSTOMS_NODES", None)
        self.calls.append(args)
        done = subprocess.run(
            [str(CUSTOMS), *args], env=env, capture_output=True, text=True, timeout=120
        )
        return done.returncode, done.stdout, done.stderr

    def json(self, *argv: str | Path, nodes: list[str] | None = None) -> tuple[int, Any]:
        code, out, err = self.run(*argv, "--json", nodes=nodes)
        assert out, err
        document = json.loads(out)
        assert document["exit_code"] == code
        return code, document

    def submit(self, member: str, cluster: Cluster, kind: str, body: dict[str, Any]) -> Any:
        node = cluster[member]
        body_file = self.home / f"body-{next(_serial)}.json"
        body_file.write_text(json.dumps(body))
        code, document = self.json(
            "submit",
            kind,
            "--body",
            body_file,
            "--token-file",
            node.root / "api.token",
            "--wait",
            nodes=[node.url],
        )
        return code, document

    def submit_signed(
        self,
        member: str,
        cluster: Cluster,
        kind: str,
        body: dict[str, Any],
        *,
        nodes: list[str],
        wait: bool = True,
    ) -> tuple[int, Any]:
        """Sign here with the member's key and post through ``nodes`` (its token)."""
        node = cluster[member]
        body_file = self.home / f"body-{next(_serial)}.json"
        body_file.write_text(json.dumps(body))
        return self.json(
            "submit",
            kind,
            "--body",
            body_file,
            "--key",
            node.root / "node.key",
            "--token-file",
            node.root / "api.token",
            *(["--wait"] if wait else []),
            nodes=nodes,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("net") / "net", IDS) as running:
        running.start(*IDS)
        running.wait_height(2, IDS)
        yield running


@pytest.fixture
def official(cluster: Cluster, tmp_path: Path) -> Official:
    return Official(tmp_path, cluster.root / "genesis.json", [cluster[m].url for m in IDS])


def issue(official: Official, cluster: Cluster, **fields: Any) -> str:
    body = samples.cert_issue(cert_id(), "CN", valid_until=FAR)
    body.update(fields)
    code, document = official.submit("CN", cluster, "cert.issue", body)
    assert code == 0 and document["status"] == "committed", document
    return str(body["cert_id"])


def verdict(official: Official, cert: str, *extra: str | Path) -> tuple[int, str]:
    code, document = official.json("verify", cert, *extra)
    return code, document.get("verdict") or document["error"]["check"]


# -- the network as an official sees it ---------------------------------------------------


def test_status_shows_every_node_and_one_verified_head(
    official: Official, cluster: Cluster
) -> None:
    code, document = official.json("status")
    assert code == 0
    assert document["validators"] == sorted(IDS) and document["members"] == 4
    assert [n["member"] for n in document["nodes"]] == IDS
    assert all(n["reachable"] and n["same_genesis"] for n in document["nodes"])
    assert document["head"]["height"] >= 2
    code, out, _ = official.run("status")
    assert code == 0 and "4 validators (CN, DE, NL, SG)" in out


def test_a_certificates_life_online(official: Official, cluster: Cluster) -> None:
    cert = issue(official, cluster)
    assert verdict(official, cert) == (0, "IN_FORCE")
    reason = {"cert_id": cert, "reason": "holder under investigation"}
    assert official.submit("CN", cluster, "cert.suspend", reason)[0] == 0
    assert verdict(official, cert) == (1, "SUSPENDED")
    assert official.submit("CN", cluster, "cert.reinstate", reason)[0] == 0
    assert verdict(official, cert) == (0, "IN_FORCE")
    _, before = official.json("status")
    code, revoked = official.submit(
        "CN", cluster, "cert.revoke", {"cert_id": cert, "reason": "forged invoices"}
    )
    assert code == 0
    code, document = official.json("verify", cert)
    assert (code, document["verdict"]) == (1, "REVOKED")
    assert "by CN Customs: forged invoices" in document["headline"]
    assert document["timeline"][-1]["height"] == revoked["height"]
    # Before the revocation's block it was in force; at that block's time it is revoked.
    before_revocation = str(revoked["block_time"] - 1)
    assert verdict(official, cert, "--at", before_revocation) == (0, "IN_FORCE")
    assert verdict(official, cert, "--at", str(revoked["block_time"])) == (1, "REVOKED")
    assert before["head"]["height"] < document["proof"]["head"]["height"]


def test_unknown_document_and_aeo_recognitions(
    official: Official, cluster: Cluster, tmp_path: Path
) -> None:
    assert verdict(official, "NEVER-ISSUED-1") == (1, "UNKNOWN")
    paper = tmp_path / "certificate.pdf"
    paper.write_bytes(b"%PDF-1.7 certificate of origin")
    cert = issue(official, cluster, document_sha256=hashlib.sha256(paper.read_bytes()).hexdigest())
    assert verdict(official, cert, "--document", paper) == (0, "IN_FORCE")
    paper.write_bytes(b"%PDF-1.7 certificate of origin, altered")
    assert verdict(official, cert, "--document", paper) == (1, "DOCUMENT_MISMATCH")

    aeo = samples.cert_issue(f"AEO-CN-{next(_serial):04d}", "CN", type_="aeo", valid_until=FAR)
    assert official.submit("CN", cluster, "cert.issue", aeo)[0] == 0
    for member in ("NL", "DE"):
        recognise = {"cert_id": aeo["cert_id"], "arrangement": "EU-CN MRA"}
        assert official.submit(member, cluster, "cert.recognize", recognise)[0] == 0
    code, document = official.json("verify", aeo["cert_id"])
    assert code == 0
    assert [r["member"] for r in document["recognitions"]] == ["DE", "NL"]
    code, out, _ = official.run("verify", aeo["cert_id"])
    assert "NL Customs (NL) under EU-CN MRA" in out


def test_the_rules_refuse_with_their_code(official: Official, cluster: Cluster) -> None:
    cert = issue(official, cluster)
    code, document = official.submit(
        "NL", cluster, "cert.revoke", {"cert_id": cert, "reason": "not ours to revoke"}
    )
    assert code == 1 and document["error"]["check"] == "not_permitted"
    assert verdict(official, cert) == (0, "IN_FORCE")


def test_signing_locally_with_a_member_key(official: Official, cluster: Cluster) -> None:
    cert = samples.cert_issue(cert_id(), "CN", valid_until=FAR)
    node = cluster["CN"]
    code, document = official.submit_signed("CN", cluster, "cert.issue", cert, nodes=[node.url])
    assert (code, document["status"]) == (0, "committed")
    # A mistake is found here, before anything is sent: an invalid HS code.
    cert = {**cert, "cert_id": cert_id(), "hs_codes": ["999999"]}
    code, document = official.submit_signed(
        "CN", cluster, "cert.issue", cert, nodes=[node.url], wait=False
    )
    assert code == 1 and document["error"]["check"] == "invalid_identifier"


def test_history_of_a_shipment_with_its_certificates(official: Official, cluster: Cluster) -> None:
    cert = issue(official, cluster)
    ucr = f"6CN-NET-{next(_serial):04d}"
    declaration = samples.declare(ucr, certificates=(cert,))
    assert official.submit("CN", cluster, "shipment.declare", declaration)[0] == 0
    code, document = official.json("history", f"shipment/{ucr}")
    assert code == 0
    (shipment,) = document["subjects"]
    assert shipment["record"]["status"] == "declared"
    assert shipment["timeline"][0]["cited"][0] == {
        "cert_id": cert,
        "in_force": True,
        "status": "in force",
    }


# -- several nodes, stale nodes, forgetful nodes ---------------------------------------------


class _Replayer(BaseHTTPRequestHandler):
    """A stand-in node that answers from recorded bytes (a stale copy) or, with
    ``forget``, takes entries (202) and then knows nothing of them."""

    proofs: bytes = b""
    forget = False

    def do_GET(self) -> None:
        if self.path.startswith("/v1/proofs") and self.proofs:
            self._answer(200, self.proofs, "application/msgpack")
        else:
            self._answer(404, b'{"code": "not_found", "message": "unknown"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        entry = json.loads(self.rfile.read(length))
        if self.forget:
            wire = json.dumps({"id": _entry_id(entry)}).encode()
            self._answer(202, wire)
        else:
            self._answer(503, b'{"code": "busy", "message": "busy"}')

    def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _entry_id(wire: dict[str, Any]) -> str:
    from ledger.entry import entry_from_json

    return entry_from_json(wire, 1 << 20).id_hex


@pytest.fixture
def stand_in() -> Iterator[tuple[str, type[_Replayer]]]:
    handler = type("Handler", (_Replayer,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_node_serving_a_stale_copy_is_caught(
    official: Official, cluster: Cluster, stand_in: tuple[str, type[_Replayer]], tmp_path: Path
) -> None:
    cert = issue(official, cluster)
    old = tmp_path / "before.clb"
    assert official.run("proof", cert, "-o", old)[0] == 0
    official.submit("CN", cluster, "cert.revoke", {"cert_id": cert, "reason": "forged"})
    assert verdict(official, cert) == (1, "REVOKED")  # the checkpoint moves past it
    # The saved bundle from before the revocation is now a rollback...
    assert verdict(official, cert, "--bundle", old) == (3, "rollback")
    # ...and so is a node that serves that old view as its answer.
    url, handler = stand_in
    handler.proofs = old.read_bytes()
    code, document = official.json("verify", cert, nodes=[url])
    assert code == 3 and document["error"]["check"] == "rollback"
    # Beside an up-to-date node, the stale copy is a proven prefix of its log: it is
    # reported as lagging, and the verdict comes from the newest head.
    code, document = official.json("verify", cert, nodes=[url, cluster["CN"].url])
    assert (code, document["verdict"]) == (1, "REVOKED")
    assert [lag["node"] for lag in document["proof"]["lagging"]] == [url]


def test_a_bundle_that_does_not_verify_is_never_saved(
    official: Official, cluster: Cluster, stand_in: tuple[str, type[_Replayer]], tmp_path: Path
) -> None:
    cert = issue(official, cluster)
    good = tmp_path / "good.clb"
    assert official.run("proof", cert, "-o", good)[0] == 0
    forged = bytearray(good.read_bytes())
    forged[len(forged) // 2] ^= 0x01
    url, handler = stand_in
    handler.proofs = bytes(forged)
    target = tmp_path / "forged.clb"
    code, document = official.json("proof", cert, "-o", target, nodes=[url])
    assert code == 3 and document["error"]["check"]
    assert not target.exists()


def test_submit_posts_the_same_entry_again_when_a_node_forgets_it(
    official: Official, cluster: Cluster, stand_in: tuple[str, type[_Replayer]]
) -> None:
    url, handler = stand_in
    handler.forget = True
    node = cluster["CN"]
    cert = samples.cert_issue(cert_id(), "CN", valid_until=FAR)
    code, document = official.submit_signed(
        "CN", cluster, "cert.issue", cert, nodes=[url, node.url]
    )
    assert (code, document["status"], document["reposts"]) == (0, "committed", 1)
    assert document["node"] == node.url


def test_one_node_down_is_a_warning_all_down_is_exit_4(
    official: Official, cluster: Cluster, tmp_path: Path
) -> None:
    cert = issue(official, cluster)
    bundle = tmp_path / "proof.clb"
    assert official.run("proof", cert, "-o", bundle)[0] == 0
    cluster.stop("SG")
    try:
        code, document = official.json("verify", cert)
        assert (code, document["verdict"]) == (0, "IN_FORCE")
        assert any(cluster["SG"].url in w for w in document["proof"]["warnings"])
    finally:
        cluster.start("SG")


def test_two_nodes_with_conflicting_heads_are_fork_evidence(tmp_path: Path) -> None:
    """Two stand-in nodes serve quorum-signed heads of one height that differ: both are
    printed and the call fails, whatever the checkpoint says."""
    from tests.local_chain import LocalChain, customs_genesis

    genesis = customs_genesis()
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_bytes(genesis.to_json_bytes())
    servers = []
    try:
        for holder in ("Holder A", "Holder B"):
            chain = LocalChain(tmp_path / holder, genesis)
            body = samples.cert_issue("CO-CN-FORK-2", "CN", valid_until=FAR)
            body["holder"] = holder
            chain.write("CN", "cert.issue", body)
            handler = type("Handler", (_Replayer,), {})
            saved = chain.bundle(["cert/CO-CN-FORK-2"], tmp_path / f"{holder}.clb")
            handler.proofs = saved.read_bytes()
            chain.close()
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
        urls = [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
        official = Official(tmp_path, genesis_file, urls)
        code, document = official.json("verify", "CO-CN-FORK-2")
        assert code == 3 and document["error"]["check"] == "fork"
        code, _, err = official.run("verify", "CO-CN-FORK-2")
        assert code == 3 and "two quorum-signed headers at height 1" in err
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_json_of_status_proof_and_submit_follows_the_schema(
    official: Official, cluster: Cluster, tmp_path: Path
) -> None:
    import jsonschema

    text = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    schema = json.loads(text.split("<!-- schema -->")[1].split("```json")[1].split("```")[0])
    cert = samples.cert_issue(cert_id(), "CN", valid_until=FAR)
    _, submitted = official.submit("CN", cluster, "cert.issue", cert)
    documents = [
        submitted,
        official.json("status")[1],
        official.json("proof", cert["cert_id"], "-o", tmp_path / "p.clb")[1],
        official.json("history", f"cert/{cert['cert_id']}")[1],
    ]
    for document in documents:
        jsonschema.validate(document, schema)


def test_offline_with_every_node_stopped(
    official: Official, cluster: Cluster, tmp_path: Path
) -> None:
    # Last in this module: it stops the network.
    cert = issue(official, cluster)
    bundle = tmp_path / "proof.clb"
    code, out, _ = official.run("proof", cert, "-o", bundle)
    assert code == 0 and "saved" in out
    for member in IDS[1:]:
        cluster.stop(member)
    # CN alone hears 1 of 4 validators: alive, not ready (for an orchestrator).
    assert cluster["CN"].get("/healthz").status == 200
    cluster.wait_until(lambda: cluster["CN"].get("/readyz").status == 503, what="not ready")
    assert "hears 1 of 4 validators" in cluster["CN"].get("/readyz").json()["message"]
    cluster.stop("CN")
    code, document = official.json("verify", cert)
    assert code == 4 and "no node answered" in document["error"]["message"]
    assert verdict(official, cert, "--bundle", bundle) == (0, "IN_FORCE")
    code, out, err = official.run("verify", cert, "--timeout", "1")
    assert code == 4 and "no answer" in err and "REVOKED" not in out + err
