"""Framing: one decoder for both readers, fed whole, byte by byte or in odd chunks; the
size limits raise PayloadTooLarge, garbage ProtocolError."""

from __future__ import annotations

import io
import random

import pytest

from coldsnap.wire.framing import (
    MAX_HEADER,
    ChannelClosed,
    FrameDecoder,
    Message,
    PayloadTooLarge,
    ProtocolError,
    read_message,
    write_message,
)

MESSAGES: list[Message] = [
    ({"type": "ready", "timings": {"import_s": 0.5}}, None),
    ({"type": "result", "call_id": "c1", "ok": True}, b"x" * 70_000),
    ({"type": "result", "call_id": "c2", "ok": False}, b""),  # an empty blob is not None
    ({"type": "shutdown"}, None),
    ({"text": "caf\u00e9 \u2603"}, bytes(range(256))),
]


def _wire(messages: list[Message]) -> bytes:
    stream = io.BytesIO()
    for header, blob in messages:
        write_message(stream, header, blob)
    return stream.getvalue()


def _feed_in_chunks(data: bytes, sizes: list[int]) -> list[Message]:
    decoder, messages, at = FrameDecoder(), [], 0
    for size in sizes:
        messages += decoder.feed(data[at:at + size])
        at += size
    messages += decoder.feed(data[at:])
    return messages


def test_the_decoder_reads_what_write_message_wrote_in_one_piece() -> None:
    assert FrameDecoder().feed(_wire(MESSAGES)) == MESSAGES


def test_the_decoder_fed_byte_by_byte() -> None:
    data = _wire(MESSAGES)
    decoder = FrameDecoder()
    received: list[Message] = []
    for i in range(len(data)):
        received += decoder.feed(data[i:i + 1])
    assert received == MESSAGES


@pytest.mark.parametrize("seed", range(20))
def test_the_decoder_fed_in_odd_chunks(seed: int) -> None:
    data = _wire(MESSAGES)
    chance = random.Random(seed)
    sizes = [chance.choice([0, 1, 3, 4, 7, 8, 12, 4095, 65537]) for _ in range(200)]
    assert _feed_in_chunks(data, sizes) == MESSAGES


def test_the_decoder_splits_anywhere_in_a_small_stream() -> None:
    small = [({"a": 1}, b"xy"), ({"b": 2}, None), ({"c": 3}, b"")]
    data = _wire(small)
    for cut in range(len(data) + 1):
        assert _feed_in_chunks(data, [cut]) == small, cut


def test_a_whole_blob_fed_at_once_is_not_copied() -> None:
    blob = b"z" * 100_000
    data = _wire([({}, blob)])
    decoder = FrameDecoder()
    assert decoder.feed(data[:-len(blob)]) == []
    assert decoder.wanted == len(blob)
    fed = data[-len(blob):]
    [(header, received)] = decoder.feed(fed)
    assert header == {} and received is fed


def test_read_message_reads_one_message_and_not_a_byte_more() -> None:
    stream = io.BytesIO(_wire(MESSAGES))
    for expected in MESSAGES:
        assert read_message(stream) == expected
    with pytest.raises(ChannelClosed, match="4 of 4 bytes unread"):
        read_message(stream)


def test_read_message_raises_channel_closed_mid_message() -> None:
    data = _wire([({"type": "result"}, b"abcdef")])
    with pytest.raises(ChannelClosed, match="2 of 6 bytes unread"):
        read_message(io.BytesIO(data[:-2]))


def test_a_blob_over_the_limit_is_refused_before_it_is_read() -> None:
    data = _wire([({"op": "call"}, b"x" * 1001)])
    stream = io.BytesIO(data)
    with pytest.raises(PayloadTooLarge, match="a payload of 1001 bytes exceeds the limit of "
                       "1000 bytes$") as caught:
        read_message(stream, max_blob=1000)
    assert (caught.value.size, caught.value.limit) == (1001, 1000)
    assert stream.tell() == len(data) - 1001  # the blob is still unread
    assert read_message(io.BytesIO(data), max_blob=1001)[1] == b"x" * 1001


def test_on_header_refuses_a_message_before_its_blob_or_blob_length_is_read() -> None:
    data = _wire([({"op": "call", "token": "wrong"}, b"x" * 1000)])
    stream = io.BytesIO(data)
    seen: list[dict] = []

    def refuse(header: dict) -> None:
        seen.append(dict(header))
        raise PermissionError("wrong token")

    with pytest.raises(PermissionError, match="wrong token"):
        read_message(stream, on_header=refuse)
    assert seen == [{"op": "call", "token": "wrong"}]  # without the framing's "blob" key
    assert stream.tell() == len(data) - 8 - 1000  # the blob's length and the blob: unread


def test_the_decoder_names_what_sets_its_limit() -> None:
    decoder = FrameDecoder(max_blob=10, limit_name="COLDSNAP_MAX_PAYLOAD_BYTES")
    with pytest.raises(PayloadTooLarge, match=r"limit of 10 bytes \(COLDSNAP_MAX_PAYLOAD_BYTES\)"):
        decoder.feed(_wire([({}, b"x" * 11)]))


def test_a_header_over_max_header_is_refused_from_its_length_alone() -> None:
    with pytest.raises(PayloadTooLarge, match="exceeds the") as caught:
        FrameDecoder().feed((MAX_HEADER + 1).to_bytes(4, "big"))
    assert caught.value.limit == MAX_HEADER
    assert isinstance(caught.value, ProtocolError)  # callers that only know ProtocolError


@pytest.mark.parametrize("data, error", [
    (b"\0\0\0\x05hello", "a header is not JSON"),
    (b"\0\0\0\x02\xff\xfe", "a header is not JSON"),  # not UTF-8
    (b"\0\0\0\x02[]", "a header is a JSON list, not an object"),
    (b"\0\0\0\x01" + b"7", "a header is a JSON int, not an object"),
    (b"\0\0\0\0", "a header is not JSON"),
])
def test_garbage_raises_protocol_error(data: bytes, error: str) -> None:
    with pytest.raises(ProtocolError, match=error) as caught:
        FrameDecoder().feed(data)
    assert not isinstance(caught.value, PayloadTooLarge)
    with pytest.raises(ProtocolError, match=error):
        read_message(io.BytesIO(data))
