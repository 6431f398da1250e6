"""Authenticated, gossiping WebSocket links between genesis members.

frames     — binary msgpack frames with a size limit and a strict schema per type
handshake  — sans-I/O mutual authentication by signed challenge (DESIGN §3 ``peer``)
seen       — message ids and the bounded memory of those already seen
transport  — PeerManager: the aiohttp server route, dialling, reconnects, relaying
"""

from node.peers.errors import FrameError, HandshakeError, PeerError
from node.peers.frames import MESSAGE_KINDS, RELAYED_KINDS
from node.peers.transport import (
    PEER_PATH,
    OnMessage,
    PeerManager,
    PeerOptions,
    PeerStatus,
    PeerTls,
)

__all__ = [
    "MESSAGE_KINDS",
    "PEER_PATH",
    "RELAYED_KINDS",
    "FrameError",
    "HandshakeError",
    "OnMessage",
    "PeerError",
    "PeerManager",
    "PeerOptions",
    "PeerStatus",
    "PeerTls",
]
