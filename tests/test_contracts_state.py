"""Records under x:contract/: canonical on write, read back as written.

``Record.decode`` trusts the store (it skips the strict canonical re-check, see its
comment), so these tests pin what it still guarantees: every record ``encode`` writes is
canonical, it reads back to the same head and body, and bytes that are not a record
stop the node loudly instead of being taken as one.
"""

from __future__ import annotations

import pytest

from contracts.state import Record
from ledger.codec import decode, encode

HEAD = {"status": "active", "version": 2, "recognitions": {"US": "mra", "DE": "mra"}}
BODY = {"holder": "Ex", "issued_at": 5, "document_sha256": "ab" * 32, "containers": ["A"]}


def test_encoded_records_are_canonical_and_read_back_as_written() -> None:
    data = Record(dict(HEAD), dict(BODY)).encode()
    assert encode(decode(data)) == data  # the strict decoder accepts it
    record = Record.decode(data)
    assert record.head == HEAD
    assert record.body == BODY
    assert record.encode() == data


def test_a_head_change_reencodes_without_touching_the_body() -> None:
    record = Record.decode(Record(dict(HEAD), dict(BODY)).encode())
    record["status"] = "suspended"
    record["recognitions"]["AU"] = "mra"  # an unsorted insert still encodes canonically
    data = record.encode()
    assert encode(decode(data)) == data
    again = Record.decode(data)
    assert again["status"] == "suspended" and again["holder"] == "Ex"
    assert list(again["recognitions"]) == ["AU", "DE", "US"]


@pytest.mark.parametrize(
    "data",
    [encode(["not", "a", "map"]), encode({"status": "active"}), encode({"body": "str"})],
)
def test_bytes_that_are_not_a_record_fail_loudly(data: bytes) -> None:
    with pytest.raises(AssertionError, match="bad record"):
        Record.decode(data)
