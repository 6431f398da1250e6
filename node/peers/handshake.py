"""Mutual authentication of two members by signed challenge, without I/O.

    dialer   -> hello     {chain, genesis hash, dialer id, dialer nonce}
    listener -> challenge {listener id, listener nonce, sig_L}
    dialer   -> auth      {sig_D}
    listener -> ok

Both signatures cover the same transcript — genesis hash, both ids, both fresh nonces
and the TLS session's ``binding`` — under DESIGN §3's ``peer`` domain and the chain id,
each prefixed with the signer's role so a listener's signature can never be reflected
back as a dialer's. The binding is the SHA-256 of the listener's certificate as each
side knows it (the one the dialler received, the one the listener serves; empty on a
plaintext loopback link): see node.daemon.tls for why that and not an exporter. A
signature made in a TLS session that does not end at the listener's key names another
certificate, and the other side refuses it.
Fresh nonces on both sides make every signature single-use (a replayed challenge or auth
fails against the other side's new nonce). The nonces come from the caller: the shell
draws them from os.urandom, tests may fix them.
"""

from __future__ import annotations

from ledger.codec import encode
from ledger.errors import SignatureError
from ledger.genesis import Genesis, Member
from ledger.keys import Domain, SigningKey
from node.peers.errors import HandshakeError
from node.peers.frames import NONCE_BYTES, Auth, Challenge, Hello

__all__ = ["DialerHandshake", "ListenerHandshake", "transcript"]

_TRANSCRIPT_TAG = "customs-ledger/peer-handshake/v1"


def transcript(
    genesis_hash: bytes,
    dialer_id: str,
    dialer_nonce: bytes,
    listener_id: str,
    listener_nonce: bytes,
    binding: bytes = b"",
) -> bytes:
    return encode(
        [
            _TRANSCRIPT_TAG,
            genesis_hash,
            dialer_id,
            dialer_nonce,
            listener_id,
            listener_nonce,
            binding,
        ]
    )


def _sign(key: SigningKey, chain_id: str, role: str, text: bytes) -> bytes:
    return key.sign(Domain.PEER, chain_id, encode([role, text]))


def _verify(member: Member, chain_id: str, role: str, text: bytes, sig: bytes) -> None:
    try:
        member.public_key.verify(Domain.PEER, chain_id, encode([role, text]), sig)
    except SignatureError as exc:
        raise HandshakeError("bad signature", f"{member.id}: {exc}") from exc


def _member(genesis: Genesis, peer_id: str, my_id: str) -> Member:
    if peer_id == my_id:
        raise HandshakeError("self connection", f"peer claims our own id {my_id}")
    member = genesis.member(peer_id)
    if member is None:
        raise HandshakeError("not a member", f"{peer_id!r} is not in genesis {genesis.chain_id}")
    return member


def _check_nonce(nonce: bytes) -> None:
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce is {NONCE_BYTES} bytes")


class ListenerHandshake:
    """The accepting side: ``on_hello`` -> Challenge, then ``on_auth`` -> peer id."""

    def __init__(
        self,
        genesis: Genesis,
        my_id: str,
        key: SigningKey,
        nonce: bytes,
        binding: bytes = b"",
    ) -> None:
        _check_nonce(nonce)
        self._genesis = genesis
        self._my_id = my_id
        self._key = key
        self._nonce = nonce
        self._binding = binding
        self._peer: Member | None = None
        self._text = b""

    def on_hello(self, hello: Hello) -> Challenge:
        if self._peer is not None:
            raise HandshakeError("protocol", "second hello")
        if hello.chain != self._genesis.chain_id:
            raise HandshakeError(
                "wrong chain", f"peer is on {hello.chain!r}, we are {self._genesis.chain_id!r}"
            )
        if hello.genesis != self._genesis.hash:
            raise HandshakeError("genesis mismatch", f"peer genesis {hello.genesis.hex()[:16]}…")
        peer = _member(self._genesis, hello.id, self._my_id)
        self._text = transcript(
            self._genesis.hash, peer.id, hello.nonce, self._my_id, self._nonce, self._binding
        )
        self._peer = peer
        sig = _sign(self._key, self._genesis.chain_id, "listener", self._text)
        return Challenge(id=self._my_id, nonce=self._nonce, sig=sig)

    def on_auth(self, auth: Auth) -> str:
        if self._peer is None:
            raise HandshakeError("protocol", "auth before hello")
        _verify(self._peer, self._genesis.chain_id, "dialer", self._text, auth.sig)
        return self._peer.id


class DialerHandshake:
    """The connecting side: ``hello()``, then ``on_challenge`` -> Auth; ``peer_id`` after.

    ``expected_id`` is the member we meant to reach: a listener proving it is some other
    member (a mis-configured URL) is refused too.
    """

    def __init__(
        self,
        genesis: Genesis,
        my_id: str,
        key: SigningKey,
        nonce: bytes,
        expected_id: str | None = None,
        binding: bytes = b"",
    ) -> None:
        _check_nonce(nonce)
        self._binding = binding
        self._genesis = genesis
        self._my_id = my_id
        self._key = key
        self._nonce = nonce
        self._expected = expected_id
        self.peer_id: str | None = None

    def hello(self) -> Hello:
        return Hello(
            chain=self._genesis.chain_id,
            genesis=self._genesis.hash,
            id=self._my_id,
            nonce=self._nonce,
        )

    def on_challenge(self, challenge: Challenge) -> Auth:
        if self.peer_id is not None:
            raise HandshakeError("protocol", "second challenge")
        if self._expected is not None and challenge.id != self._expected:
            raise HandshakeError(
                "unexpected peer", f"dialled {self._expected}, reached {challenge.id}"
            )
        peer = _member(self._genesis, challenge.id, self._my_id)
        text = transcript(
            self._genesis.hash, self._my_id, self._nonce, peer.id, challenge.nonce, self._binding
        )
        _verify(peer, self._genesis.chain_id, "listener", text, challenge.sig)
        self.peer_id = peer.id
        return Auth(sig=_sign(self._key, self._genesis.chain_id, "dialer", text))
