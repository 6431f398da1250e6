"""One authenticated WebSocket link to a peer: a bounded send queue and its writer task."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import ClientError, ClientWebSocketResponse, WSCloseCode, web
from aiohttp.http import WebSocketReader

__all__ = ["TRANSPORT_ERRORS", "Link", "WebSocket", "raise_frame_limit"]

log = logging.getLogger("node.peers")

WebSocket = web.WebSocketResponse | ClientWebSocketResponse
_MAX_REASON = 120  # RFC 6455 §5.5: a control frame's payload is at most 125 bytes
# What a socket can raise that ends one link and says nothing about our own code: OSError
# covers ConnectionResetError and TimeoutError, ClientError is aiohttp's own (its
# ClientConnectionResetError is both). aiohttp's receive() raises one of these when the
# automatic pong to a ping meets a transport that is already closing.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (OSError, ClientError)


def raise_frame_limit(ws: WebSocket, max_msg_size: int) -> None:
    """Let ``ws`` read messages below ``max_msg_size`` from now on.

    aiohttp fixes a WebSocket's message limit when it sets up the socket's frame parser
    (its C parser keeps the limit where Python cannot change it). A peer socket starts
    with the handshake's small limit, so a stranger's frame is refused from its header
    before any of its payload is buffered; once the other side has proved it is a
    member, the parser is replaced by one with the full limit. The caller does that at
    a frame boundary where the peer, by protocol, sends nothing (the listener after the
    auth frame, before its ok; the dialler after the challenge, before its auth), so
    the old parser holds no partial frame.
    """
    queue = ws._reader
    assert queue is not None, "raise_frame_limit on a socket that is not open"
    protocol: Any = queue._protocol
    parser = WebSocketReader(queue, max_msg_size, compress=False, decode_text=True)
    ws._parser = parser
    if isinstance(ws, web.WebSocketResponse):
        ws._max_msg_size = max_msg_size
        protocol._payload_parser = None  # RequestHandler.set_parser takes a first parser
        protocol.set_parser(parser, data_received_cb=protocol._data_received_cb)
    else:
        protocol.set_parser(parser, queue, data_received_cb=protocol._data_received_cb)


class Link:
    """A live link; ``dialer`` is the member that opened the connection."""

    def __init__(
        self,
        peer_id: str,
        dialer: str,
        ws: WebSocket,
        queue_size: int,
        on_overflow: Callable[[Link], None],
    ) -> None:
        self.peer_id = peer_id
        self.dialer = dialer
        self.ws = ws
        self.height: int | None = None
        self.since = time.monotonic()  # when it was registered as the pair's link
        self.queued_bytes = 0  # frame bytes queued and not yet written to the socket
        self.closed = asyncio.Event()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)
        self._on_overflow = on_overflow
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._closing = False
        # Why the link ended, for the line that says it dropped: the first cause wins.
        self.end_reason: str | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write(), name=f"peer-writer-{self.peer_id}")

    def enqueue(self, data: bytes) -> bool:
        """Queue a frame; on overflow the link is closed (a peer too slow to keep up)."""
        if self._closing:
            return False
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            self._on_overflow(self)
            self.close(WSCloseCode.TRY_AGAIN_LATER, "send queue overflow")
            return False
        self.queued_bytes += len(data)
        return True

    def close(self, code: int, reason: str) -> None:
        """Start closing; the reader loop of this link ends when the close completes."""
        if self._closing:
            return
        self._closing = True
        if self.end_reason is None:
            self.end_reason = f"closed by this node: {reason}"
        if self._writer is not None:
            self._writer.cancel()
        self._closer = asyncio.create_task(
            self._close(code, reason), name=f"peer-close-{self.peer_id}"
        )

    async def _close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode()[:_MAX_REASON])

    async def stop(self) -> None:
        """Cancel the writer and wait for it; called once the reader loop has ended."""
        self._closing = True
        tasks = [t for t in (self._writer, self._closer) if t is not None]
        if self._writer is not None:
            self._writer.cancel()
        if tasks:
            # wait() rather than await: a cancelled writer is expected, not our failure.
            await asyncio.wait(tasks)
        self.closed.set()
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"peer task {task.get_name()} failed") from task.exception()

    async def _write(self) -> None:
        while True:
            data = await self._queue.get()
            try:
                await self.ws.send_bytes(data)
            except TRANSPORT_ERRORS as exc:
                # The socket went away under us; the reader sees the close and cleans up.
                log.debug("send to %s failed: %s", self.peer_id, exc)
                return
            finally:
                self.queued_bytes -= len(data)
