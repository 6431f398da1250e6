"""Issue 18: encrypted, mutually authenticated member links, on real node processes.

- two nodes with ``https://`` endpoints link over TLS 1.3 and commit, and their port
  speaks nothing but TLS;
- a dialler refuses a peer whose certificate is not for genesis's key for that member
  (another network's node on the endpoint), says why, counts it, and links once the
  right node is there;
- the handshake is bound to the listener's certificate: a relay terminating the
  dialler's TLS with a certificate of its own cannot carry a member's handshake through;
- plaintext is for loopback only, and says so in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ledger.codec import encode
from ledger.genesis import Genesis
from ledger.keys import Domain, SigningKey
from node.admin.cli import main as node_main
from node.daemon.key_files import load_key
from node.daemon.tls import (
    CertificateKeyMismatch,
    binding,
    certificate_key,
    client_context,
    make_certificate,
    peer_certificate,
    pin_peer_certificate,
    server_context,
)
from node.peers.frames import NONCE_BYTES, Auth, Challenge, Ok, decode_frame, encode_frame
from node.peers.handshake import DialerHandshake, transcript
from tests.cluster import Cluster, NodeProcess
from tests.test_byzantine_peer import peer_events
from tests.test_network import submit

PAIR = ("CN", "DE")
CUSTOMS = Path(sys.executable).parent / "customs"


def der_of(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def wss(node: NodeProcess) -> str:
    return node.url.replace("https://", "wss://") + "/v1/peer"


# ---- the certificate ---------------------------------------------------------------


def test_a_certificate_carries_the_member_key_and_the_pin_refuses_any_other() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    pem = make_certificate(key, "CN")
    assert pem == make_certificate(key, "CN")  # a function of the key alone
    der = der_of(pem)
    assert certificate_key(der) == key.public_key.raw
    pin_peer_certificate(der, "CN", key.public_key)
    with pytest.raises(CertificateKeyMismatch, match="CN's certificate carries key"):
        pin_peer_certificate(der, "CN", other.public_key)
    with pytest.raises(CertificateKeyMismatch, match="no certificate"):
        pin_peer_certificate(None, "CN", key.public_key)
    assert certificate_key(b"not a certificate") is None


# ---- two real nodes ----------------------------------------------------------------


def test_two_nodes_link_over_tls_and_commit(tmp_path: Path) -> None:
    with Cluster(tmp_path, PAIR, tls=True) as cluster:
        assert all(m.endpoints[0].startswith("https://") for m in cluster.genesis.members)
        cluster.start()
        entry_id = submit(cluster["CN"])
        cluster.wait_committed([entry_id], PAIR)
        for member_id in PAIR:
            node = cluster[member_id]
            assert "serving TLS 1.3" in node.log_text(), member_id
            assert "plaintext" not in node.log_text(), member_id
            assert peer_events(node).get("refused_certificate_key", 0) == 0
        # The port speaks TLS only: a plaintext request gets no HTTP answer.
        plain = cluster["CN"].url.replace("https://", "http://") + "/v1/status"
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(plain, timeout=5).read()
        # ... and a TLS 1.2 client is turned away.
        old = client_context()
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((ssl.SSLError, urllib.error.URLError)):
            urllib.request.urlopen(cluster["CN"].url + "/v1/status", timeout=5, context=old)


def test_a_dialler_refuses_a_certificate_for_another_key_then_links_to_the_member(
    tmp_path: Path,
) -> None:
    with (
        Cluster(tmp_path / "net", PAIR, tls=True) as cluster,
        Cluster(tmp_path / "other", ["DE"], tls=True, chain_id="other-net-1") as other,
    ):
        # Another network's DE, with its own key, listens on our DE's endpoint.
        impostor, real_de = other["DE"], cluster["DE"]
        config = impostor.config.read_text()
        impostor.config.write_text(
            config.replace(f"port = {impostor.port}", f"port = {real_de.port}")
        )
        impostor.port = real_de.port
        other.start()
        cluster.start("CN")
        cn = cluster["CN"]
        cluster.wait_until(
            lambda: peer_events(cn).get("refused_certificate_key", 0) >= 2,
            what="CN to refuse the impostor's certificate",
        )
        log = cn.log_text()
        assert f"refused peer DE at {real_de.url}: DE's certificate carries key" in log
        expected = cluster.genesis.member("DE")
        assert expected is not None and expected.public_key.hex[:16] in log
        # Nothing of the peer protocol reached the impostor: no hello, so no refusal of
        # one (genesis mismatch, not a member) in its log.
        assert "genesis mismatch" not in impostor.log_text()
        assert "not a member" not in impostor.log_text()
        assert cn.status() is not None and cn.height() == 0  # alone, CN cannot commit

        other.stop("DE")
        cluster.start("DE")
        entry_id = submit(cn)
        cluster.wait_committed([entry_id], PAIR)


# ---- the handshake is bound to the TLS session ----------------------------------------


def careless_auth(
    genesis: Genesis, key: SigningKey, nonce: bytes, challenge: Challenge, seen: bytes
) -> Auth:
    """A dialler's auth that skips checking the challenge: what a relay hopes to get."""
    text = transcript(genesis.hash, "CN", nonce, challenge.id, challenge.nonce, seen)
    return Auth(sig=key.sign(Domain.PEER, genesis.chain_id, encode(["dialer", text])))


@contextlib.asynccontextmanager
async def relay_to(target: str, tmp_path: Path) -> AsyncIterator[str]:
    """A TLS server with its own certificate that pipes /v1/peer frames to ``target``."""
    outsider = SigningKey.generate()
    cert, key_file = tmp_path / "relay.crt", tmp_path / "relay.key"
    cert.write_bytes(make_certificate(outsider, "RELAY"))
    key_file.write_bytes(outsider.to_pem())

    async def pipe(request: web.Request) -> web.WebSocketResponse:
        inbound = web.WebSocketResponse()
        await inbound.prepare(request)
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(target, ssl=client_context()) as outbound,
        ):

            async def forward(
                src: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
                dst: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
            ) -> None:
                async for msg in src:
                    if msg.type != aiohttp.WSMsgType.BINARY:
                        break
                    await dst.send_bytes(msg.data)
                await dst.close()

            await asyncio.gather(forward(inbound, outbound), forward(outbound, inbound))
        return inbound

    app = web.Application()
    app.router.add_get("/v1/peer", pipe)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(cert, key_file, None))
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"wss://127.0.0.1:{port}/v1/peer"
    finally:
        await runner.cleanup()


async def handshake(
    url: str, genesis: Genesis, key: SigningKey, *, careful: bool
) -> tuple[str, object]:
    """Dial ``url`` without pinning, as CN, binding to whatever certificate came back;
    return how it ended: ("ok", None), ("refused-by-us", error) or ("closed", code)."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, ssl=client_context()) as ws,
    ):
        seen = binding(peer_certificate(ws.get_extra_info("ssl_object")))
        nonce = os.urandom(NONCE_BYTES)
        shake = DialerHandshake(genesis, "CN", key, nonce, expected_id="DE", binding=seen)
        await ws.send_bytes(encode_frame(shake.hello()))
        challenge = decode_frame((await ws.receive()).data, 1 << 20)
        assert isinstance(challenge, Challenge)
        if careful:
            try:
                auth = shake.on_challenge(challenge)
            except Exception as exc:  # the check a pinning-less dialler still has
                return "refused-by-us", exc
        else:
            auth = careless_auth(genesis, key, nonce, challenge, seen)
        await ws.send_bytes(encode_frame(auth))
        reply = await ws.receive()
        if reply.type == aiohttp.WSMsgType.BINARY:
            assert isinstance(decode_frame(reply.data, 1 << 20), Ok)
            return "ok", None
        return "closed", ws.close_code


async def test_a_relay_cannot_carry_a_member_handshake_to_another_tls_session(
    tmp_path: Path,
) -> None:
    with Cluster(tmp_path / "net", PAIR, tls=True) as cluster:
        cluster.start("DE")
        de, genesis = cluster["DE"], cluster.genesis
        key = load_key(cluster["CN"].root / "node.key")
        async with relay_to(wss(de), tmp_path) as relayed:
            # Through the relay, CN's check of DE's challenge fails: DE signed for its own
            # certificate, CN's session shows the relay's.
            how, why = await handshake(relayed, genesis, key, careful=True)
            assert how == "refused-by-us" and "bad signature" in str(why), (how, why)
            # A dialler signing regardless: DE refuses the auth, and counts it.
            before = peer_events(de).get("refused_bad_signature", 0)
            how, _ = await handshake(relayed, genesis, key, careful=False)
            assert how == "closed", how
            assert peer_events(de).get("refused_bad_signature", 0) == before + 1
        # The same careless dialler straight to DE's TLS session links: the binding, and
        # nothing else, refused it above.
        how, _ = await handshake(wss(de), genesis, key, careful=False)
        assert how == "ok"


# ---- plaintext is for loopback only --------------------------------------------------


def test_a_plaintext_network_off_loopback_is_refused_and_tls_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["testnet", "--members", "2", "--host", "10.11.12.13", "--base-port", "7400"]
    assert node_main([*args, "--dir", str(tmp_path / "plain")]) == 2
    err = capsys.readouterr().err
    assert "10.11.12.13 is not a loopback address" in err
    assert not (tmp_path / "plain").exists()
    assert node_main([*args, "--dir", str(tmp_path / "tls"), "--tls"]) == 0
    genesis = (tmp_path / "tls" / "genesis.json").read_text()
    assert "https://10.11.12.13:7400" in genesis and "http://" not in genesis
    cert = tmp_path / "tls" / "CN" / "node.crt"
    assert cert.stat().st_mode & 0o777 == 0o600
    key = load_key(tmp_path / "tls" / "CN" / "node.key")
    assert certificate_key(der_of(cert.read_bytes())) == key.public_key.raw


def test_a_loopback_plaintext_node_warns_at_start(tmp_path: Path) -> None:
    with Cluster(tmp_path, ["CN"]) as cluster:
        cluster.start()
        log = cluster["CN"].log_text()
        assert "WARNING" in log and "serving plaintext http on loopback" in log
        assert cluster["CN"].url.startswith("http://")


# ---- the officials' CLI pins nodes by genesis ------------------------------------------


def customs(home: Path, genesis: Path, *argv: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "CUSTOMS_GENESIS": str(genesis),
    }
    env.pop("CUSTOMS_NODES", None)
    env.pop("CUSTOMS_TRUST", None)
    done = subprocess.run(
        [str(CUSTOMS), *argv], env=env, capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout, done.stderr


def test_the_cli_pins_a_member_endpoint_and_refuses_a_wrong_certificate(tmp_path: Path) -> None:
    with (
        Cluster(tmp_path / "net", PAIR, tls=True) as cluster,
        Cluster(tmp_path / "other", ["DE"], tls=True, chain_id="other-net-1") as other,
    ):
        impostor, real_de, cn = other["DE"], cluster["DE"], cluster["CN"]
        config = impostor.config.read_text()
        impostor.config.write_text(
            config.replace(f"port = {impostor.port}", f"port = {real_de.port}")
        )
        impostor.port = real_de.port
        cluster.start()
        cluster.wait_committed([submit(cn)], PAIR)  # a head to verify
        cluster.stop("DE")
        other.start()
        home, genesis = tmp_path / "official", cluster.root / "genesis.json"

        # CN's endpoint, pinned to CN's key in genesis: answered.
        code, out, err = customs(home, genesis, "status", "--json", "--node", cn.url)
        assert code == 0, (out, err)
        assert json.loads(out)["exit_code"] == 0

        # DE's endpoint answered by a node with another key: refused before any request,
        # with the reason; no node answered, so exit 4 (docs/cli.md).
        code, out, err = customs(home, genesis, "status", "--node", real_de.url)
        assert code == 4, (code, out, err)
        text = out + err
        assert "refused its TLS certificate" in text and "DE's certificate carries key" in text
        # One bad node among good ones is a warning, and the good one answers.
        code, out, err = customs(home, genesis, "status", "--node", real_de.url, "--node", cn.url)
        assert code == 0, (code, out, err)

        # An https URL genesis does not list cannot be pinned: a usage error that says
        # what to do, then, with --trust system, the system store refuses a self-signed
        # certificate.
        elsewhere = cn.url.replace("127.0.0.1", "localhost")
        code, out, err = customs(home, genesis, "status", "--node", elsewhere)
        assert code == 2 and "--trust system" in err, (code, err)
        code, out, err = customs(home, genesis, "status", "--node", elsewhere, "--trust", "system")
        assert code == 4 and "refused its TLS certificate" in out + err, (code, out, err)


# ---- the certificate file ------------------------------------------------------------


def test_run_refuses_a_certificate_for_another_key_and_cert_writes_the_right_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert node_main(["testnet", "--dir", str(tmp_path / "net"), "--members", "1", "--tls"]) == 0
    node_dir = tmp_path / "net" / "CN"
    config = str(node_dir / "node.toml")
    capsys.readouterr()
    # cert never replaces a certificate.
    assert node_main(["cert", "--config", config]) == 2
    assert "a certificate already exists" in capsys.readouterr().err
    # A certificate for another key: peers would refuse it, so run refuses to start.
    (node_dir / "node.crt").write_bytes(make_certificate(SigningKey.generate(), "CN"))
    assert node_main(["run", "--config", config]) == 2
    err = capsys.readouterr().err
    assert "is not for this node's key" in err and "customs-node cert" in err
    (node_dir / "node.crt").unlink()
    assert node_main(["run", "--config", config]) == 2
    assert "does not exist" in capsys.readouterr().err
    # cert writes the one for node.key, mode 0600 like the key.
    assert node_main(["cert", "--config", config]) == 0
    key = load_key(node_dir / "node.key")
    assert certificate_key(der_of((node_dir / "node.crt").read_bytes())) == key.public_key.raw
    assert (node_dir / "node.crt").stat().st_mode & 0o777 == 0o600


def test_a_tls_handshake_that_never_finishes_is_closed(tmp_path: Path) -> None:
    with Cluster(tmp_path, ["CN"], tls=True, settings={"request_head_ms": 1500}) as cluster:
        cluster.start()
        node = cluster["CN"]
        with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
            sock.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, and no more
            closed = False
            for _ in range(40):  # 10 s at most; asyncio alone would wait 60 s
                sock.settimeout(0.25)
                try:
                    closed = sock.recv(1) == b""
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                if closed:
                    break
        assert closed, "the node kept a socket whose TLS handshake never ended"
        assert node.status() is not None  # and still serves
