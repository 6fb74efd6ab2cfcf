"""services.infra.dead_letters.letter: the dead-letter record every service writes."""

from __future__ import annotations

import pytest
from confluent_kafka import Message

from services.infra.dead_letters import MAX_COPY_BYTES, MAX_REASON_CHARS, letter, of_message


def test_a_letter_keeps_key_and_bytes_and_says_why_and_where() -> None:
    copy = letter("value: bad", "t", 1, 42, b"k", b"{}")
    assert (copy.key, copy.value) == (b"k", b"{}")
    assert copy.headers == [("reason", b"value: bad"), ("original_topic", b"t"),
                            ("original_partition", b"1"), ("original_offset", b"42")]


def test_an_item_of_an_envelope_carries_its_index() -> None:
    assert ("original_index", b"3") in letter("r", "t", 0, 0, None, b"{}", index=3).headers


def test_a_long_reason_is_cut() -> None:
    [(_, reason), *_] = letter("x" * 5000, "t", 0, 0, None, b"").headers
    assert reason == b"x" * MAX_REASON_CHARS


def test_a_copy_at_the_bound_is_whole() -> None:
    copy = letter("r", "t", 0, 0, b"k", b"v" * (MAX_COPY_BYTES - 1))
    assert copy.value == b"v" * (MAX_COPY_BYTES - 1)
    assert "truncated_from" not in dict(copy.headers)


def test_a_record_near_the_broker_limit_is_cut_so_its_dead_letter_fits() -> None:
    key, value = b"k" * 300_000, b"v" * 748_000  # a 1,048,000-byte hostile record
    copy = letter("r", "t", 0, 7, key, value)
    assert len(copy.key or b"") + len(copy.value or b"") <= MAX_COPY_BYTES
    assert (copy.key or b"").startswith(b"k") and (copy.value or b"").startswith(b"v")
    assert dict(copy.headers)["truncated_from"] == b"1048000"
    assert dict(copy.headers)["original_offset"] == b"7"


def test_a_consumed_message_gives_the_same_letter_as_its_parts() -> None:
    message = Message(topic="t", partition=1, offset=42, key=b"k", value=b"{}")
    assert of_message("value: bad", message) == letter("value: bad", "t", 1, 42, b"k", b"{}")


def test_a_message_without_a_position_is_refused_naming_what_it_lacks() -> None:
    with pytest.raises(ValueError, match="not a consumed record: topic t, partition None, offset None"):
        of_message("r", Message(topic="t", key=b"k", value=b"{}"))
