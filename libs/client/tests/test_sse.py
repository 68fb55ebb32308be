"""The SSE parser: exact resume points matter more than anything else here."""

import pytest

from jobwire.client.sse import SseEvent, SseParser

pytestmark = pytest.mark.unit


def feed_all(parser: SseParser, *chunks: bytes) -> list[SseEvent]:
    return [event for chunk in chunks for event in parser.feed(chunk)]


def test_multi_line_data_and_crlf_split_across_chunks() -> None:
    parser = SseParser()
    events = feed_all(parser, b"id: 7\r\nevent: stdout\r\ndata: one\r", b"\ndata: two\r\n\r", b"\n")
    assert events == [SseEvent(event="stdout", data="one\ntwo", id="7")]
    assert parser.last_id == "7"


def test_comments_are_keepalives_and_default_event_is_message() -> None:
    parser = SseParser()
    assert feed_all(parser, b": keep-alive\n\n", b"data:x\n\n") == [SseEvent("message", "x", None)]


def test_an_incomplete_event_does_not_move_the_resume_point() -> None:
    parser = SseParser()
    events = feed_all(parser, b"id: 1\ndata: a\n\n", b"id: 2\ndata: b")
    assert [e.data for e in events] == ["a"]
    assert parser.last_id == "1"


def test_utf8_split_inside_a_character_and_bom() -> None:
    parser = SseParser()
    raw = "\ufeffdata: héllo ✓\n\n".encode()
    events = feed_all(parser, *(raw[i : i + 1] for i in range(len(raw))))
    assert events == [SseEvent("message", "héllo ✓", None)]


def test_empty_data_line_keeps_the_trailing_newline_of_the_text() -> None:
    parser = SseParser()
    assert feed_all(parser, b"event: stdout\ndata: line\ndata: \n\n")[0].data == "line\n"


def test_end_event_with_empty_data_is_dispatched() -> None:
    assert feed_all(SseParser(), b"event: end\r\ndata: \r\n\r\n") == [SseEvent("end", "", None)]
