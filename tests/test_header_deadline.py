"""HeaderDeadlineProtocol keeps one timer per connection: each request's own deadline still holds.

A real uvicorn server on a real socket, in this process, with a 0.6 s deadline. The timer armed
for one request may fire while a later request on the same keep-alive connection is in progress:
that request must be judged by its own deadline, neither cut early nor let run on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ivr.middleware import header_deadline_protocol

DEADLINE = 0.6


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"got {len(await request.body())}")


@pytest.fixture
async def port() -> AsyncIterator[int]:
    app = Starlette(routes=[Route("/", echo, methods=["GET", "POST"])])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_level="error",
        http=header_deadline_protocol(DEADLINE),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    await task


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def answer(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


async def trickle(writer: asyncio.StreamWriter, data: bytes, seconds: float) -> None:
    """Send `data` spread evenly over `seconds`."""
    for byte in data:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(seconds / len(data))


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sends before it closes the connection (fails if it stays open)."""
    return await asyncio.wait_for(reader.read(), seconds)


async def trickled_until_closed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    """Trickle `data` over four deadlines; what the server sent before it closed the connection."""
    sender = asyncio.create_task(trickle(writer, data, DEADLINE * 4))
    try:
        return await closed_within(reader, DEADLINE * 3)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        writer.close()


async def test_a_later_request_is_judged_by_its_own_deadline_not_the_first_ones(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(GET)
    assert (await answer(reader)).endswith(b"got 0")  # its timer was armed for it, still pending
    await asyncio.sleep(DEADLINE * 0.6)
    # The second request's headers take 0.7 of the deadline: they pass the first request's
    # deadline, not their own.
    began = time.monotonic()
    await trickle(writer, GET, DEADLINE * 0.7)
    assert (await answer(reader)).startswith(b"HTTP/1.1 200 ")
    assert time.monotonic() - began < DEADLINE * 1.5
    writer.close()


async def test_a_later_request_too_slow_for_its_own_deadline_is_cut_off(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(GET)
    await answer(reader)
    await asyncio.sleep(DEADLINE * 0.6)
    began = time.monotonic()
    received = await trickled_until_closed(reader, writer, GET)
    took = time.monotonic() - began
    assert received == b""
    assert DEADLINE * 0.9 < took < DEADLINE * 2, took


async def test_a_body_slower_than_the_deadline_gets_408(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b"x" * 40
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n")
    received = await trickled_until_closed(reader, writer, body)
    assert received.startswith(b"HTTP/1.1 408 "), received[:100]


async def test_idle_between_requests_longer_than_the_deadline_is_fine(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(3):
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        assert (await answer(reader)).endswith(b"got 3")
        await asyncio.sleep(DEADLINE * 1.5)
    writer.close()


async def test_a_connection_that_never_sends_a_byte_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    assert await closed_within(reader, DEADLINE * 3) == b""
    assert time.monotonic() - began > DEADLINE * 0.9
    writer.close()


def head_of(size: int) -> bytes:
    """A GET whose request line and headers are about `size` bytes (1 KB headers)."""
    lines = [b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(size // 1012)]
    return b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(lines) + b"\r\n"


async def send_in_pieces(writer: asyncio.StreamWriter, data: bytes, piece: int) -> None:
    """Each piece its own read on the server: written, drained, then a pause."""
    for at in range(0, len(data), piece):
        writer.write(data[at : at + piece])
        await writer.drain()
        await asyncio.sleep(0.003)


@pytest.mark.parametrize("piece", [2_000, 1 << 20], ids=["many-reads", "one-write"])
async def test_headers_over_64_kb_get_400_however_they_arrive(port: int, piece: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Unfinished and 66,000 bytes, so that nothing is written after the server answers.
    await send_in_pieces(writer, head_of(70_000)[:66_000], piece)
    received = await closed_within(reader, DEADLINE * 3)
    assert received.startswith(b"HTTP/1.1 400 "), received[:100]
    writer.close()


@pytest.mark.parametrize("piece", [2_000, 1 << 20], ids=["many-reads", "one-write"])
async def test_headers_under_64_kb_are_answered(port: int, piece: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await send_in_pieces(writer, head_of(60_000), piece)
    assert (await answer(reader)).startswith(b"HTTP/1.1 200 ")
    writer.close()


async def test_a_large_body_read_with_its_head_is_not_counted_as_head(port: int) -> None:
    """A small head and a 300 KB body in one write (most of it in the same reads as the head):
    the body is not head, and a request after it on the same connection is answered too."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b"x" * 300_000
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n" + body + GET)
    assert (await answer(reader)).endswith(b"got 300000")
    assert (await answer(reader)).endswith(b"got 0")
    writer.close()


async def test_many_pipelined_requests_in_one_read_are_not_counted_as_one_head(port: int) -> None:
    """3,000 requests in one write (about 80 KB, read at once) that ends inside the next one's
    head: only that head's bytes may count, not the whole read. Found by a client pipelining
    status callbacks: it got 400 'Request headers too large'."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(GET * 3000 + GET[:10])
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.write(GET[10:])
    for _ in range(3001):
        assert (await answer(reader)).endswith(b"got 0")
    writer.close()


async def test_a_huge_head_after_a_pipelined_request_still_gets_400(port: int) -> None:
    """The read that ends a request and begins a huge head does not count that head; the reads
    after it do: the head is still refused (and never held more than one read past the limit)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    huge = head_of(200_000)[:96_000]  # unfinished
    writer.write(GET + huge[:30_000])  # one read: it ends the GET and begins the head
    await writer.drain()
    assert (await answer(reader)).endswith(b"got 0")
    # 66,000 bytes more, counted: over the limit with the last piece, so nothing is written after
    # the server answers.
    await send_in_pieces(writer, huge[30_000:], 2_000)
    received = await closed_within(reader, DEADLINE * 3)
    assert received.startswith(b"HTTP/1.1 400 "), received[:100]
    writer.close()
