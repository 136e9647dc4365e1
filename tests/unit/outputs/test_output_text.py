"""Untrusted job output: lines bounded, control characters and escapes gone, linear time."""

from __future__ import annotations

import time

from hpcgate.services.output_text import LineSplitter, clean_line


def test_lines_are_split_and_a_partial_line_waits() -> None:
    s = LineSplitter(100)
    assert s.feed(b"one\ntw") == ["one"]
    assert s.pending == 2
    assert s.feed(b"o\nthree\n") == ["two", "three"]
    assert s.flush() == []


def test_control_characters_and_terminal_escapes_are_dropped() -> None:
    assert clean_line(b"\x1b[31mred\x1b[0m\x00 bell\x07 tab\tkept", 100) == "red bell tab\tkept"
    assert clean_line(b"\x1b]0;title\x07text", 100) == "text"
    assert clean_line("caf\u00e9 \u0085x".encode(), 100) == "caf\u00e9 x"


def test_carriage_returns_keep_what_a_terminal_shows_last() -> None:
    assert clean_line(b"10%\r50%\r100%\r", 100) == "100%"


def test_long_lines_are_cut_and_an_endless_line_is_bounded() -> None:
    assert clean_line(b"x" * 500, 100) == "x" * 99 + "…"
    s = LineSplitter(100)
    out = s.feed(b"y" * 1000)
    assert out == ["y" * 99 + "…"]
    assert s.pending == 0


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert clean_line(b"ok \xff\xfe end", 100) == "ok \ufffd\ufffd end"


def test_hostile_input_is_handled_in_linear_time() -> None:
    s = LineSplitter(4096)
    blob = (b"\x1b[" + b"0" * 5000 + b"\x1b]" + b"a" * 5000) * 200 + b"\n"
    t0 = time.perf_counter()
    s.feed(blob)
    s.feed(b"\r" * 2_000_000 + b"\n")
    assert time.perf_counter() - t0 < 2.0
