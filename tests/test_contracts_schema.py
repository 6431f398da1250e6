"""Common rule 7: body shapes and the exact ``invalid_body`` messages they give.

The field paths in these messages are built lazily (only for a failing field or item);
these tests pin the messages so that stays invisible.
"""

from __future__ import annotations

import pytest

from contracts import Rejection
from contracts.schema import CERT_ID, Field, Shape, list_of, map_of, pattern, string, text

INNER = Shape(Field("holder", text(8), required=False), Field("codes", list_of(string, 0, 3)))
OUTER = Shape(
    Field("id", pattern(CERT_ID, "a certificate id")),
    Field("ids", list_of(pattern(CERT_ID, "a certificate id"), 1, 3)),
    Field("changes", map_of(INNER, 1), required=False),
)
GOOD = {"id": "CO-1", "ids": ["CO-1", "CO-2"], "changes": {"codes": ["a"], "holder": "h"}}


def _message(body: dict[str, object], where: str = "body") -> str:
    with pytest.raises(Rejection) as caught:
        OUTER.check(body, where)
    assert caught.value.code == "invalid_body"
    return caught.value.message


def test_a_good_body_passes_at_any_path() -> None:
    OUTER.check(GOOD)
    OUTER.check(GOOD, "body.nested")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1, "another": 2}, "body.another: unknown field"),
        ({"id": None}, "body.id: missing"),
        ({"id": 7}, "body.id: must be a string, not int"),
        ({"id": "co-1"}, "body.id: 'co-1' is not a certificate id ([A-Z0-9][A-Z0-9./-]{2,63})"),
        ({"ids": ["CO-1", 5]}, "body.ids[1]: must be a string, not int"),
        (
            {"ids": ["CO-1", "CO-2", "x"]},
            "body.ids[2]: 'x' is not a certificate id ([A-Z0-9][A-Z0-9./-]{2,63})",
        ),
        ({"ids": ["CO-1", "CO-1"]}, "body.ids: items must be distinct"),
        ({"ids": []}, "body.ids: must hold 1..3 items, got 0"),
        ({"changes": {}}, "body.changes: must hold at least 1 field(s)"),
        ({"changes": {"codes": ["a", b"b"]}}, "body.changes.codes[1]: must be a string, not bytes"),
        (
            {"changes": {"codes": [], "holder": "x" * 9}},
            "body.changes.holder: must be 1..8 characters, got 9",
        ),
        ({"changes": {"holder": "h"}}, "body.changes.codes: missing"),
        ({"changes": {"codes": [], "zz": 1}}, "body.changes.zz: unknown field"),
    ],
)
def test_messages_name_the_failing_path(change: dict[str, object], message: str) -> None:
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    assert _message(body) == message


def test_paths_follow_the_where_argument() -> None:
    assert _message({**GOOD, "ids": ["CO-1", 5]}, "body.x") == (
        "body.x.ids[1]: must be a string, not int"
    )
    assert _message({"ids": ["CO-1"]}, "body.x") == "body.x.id: missing"
