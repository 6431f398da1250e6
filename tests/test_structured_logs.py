"""JSON log lines of real nodes carry fields (height, peer, reason, entries) besides msg; a
link that drops is a warning with its reason; counts read in English."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from node.text import plural
from tests import samples
from tests.cluster import Cluster


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_plural() -> None:
    assert plural(1, "block") == "1 block"
    assert plural(0, "block") == "0 blocks"
    assert plural(2, "entry", "entries") == "2 entries"
    assert plural(1, "entry", "entries") == "1 entry"


def test_json_fields_and_a_warning_with_the_reason_when_a_link_drops(tmp_path: Path) -> None:
    with Cluster(
        tmp_path / "net", ["CN", "DE"], validators=["CN"], settings={"format": "json"}
    ) as c:
        c.start()
        cn, de = c["CN"], c["DE"]
        c.wait_until(lambda: "linked" in cn.log_text(), what="CN to link DE")
        body = samples.cert_issue("CN-LOG-000001", "CN")
        entry = cn.post("/v1/submit", {"kind": "cert.issue", "body": body}).json()["id"]
        c.wait_committed([entry], ["CN"])
        committed = [ln for ln in lines(cn.log_text()) if ln["msg"].startswith("committed")]
        assert committed and committed[-1]["msg"].endswith("with 1 entry"), committed
        assert committed[-1]["entries"] == 1 and isinstance(committed[-1]["height"], int)

        # Only the drop the kill causes (a link closed at start-up because both sides
        # dialled at once is not one: another link took its place).
        before = len(_dropped(cn.log_text()))
        c.kill("DE")
        c.wait_until(lambda: len(_dropped(cn.log_text())) > before, what="CN to notice DE gone")
        dropped = _dropped(cn.log_text())[before:]
        assert dropped[0]["level"] == "warning" and dropped[0]["peer"] == "DE", dropped
        assert dropped[0]["reason"] and dropped[0]["msg"].endswith(dropped[0]["reason"])

        assert "connection lost" in dropped[0]["reason"]  # kill -9: no close frame
        assert all("(s)" not in ln["msg"] for ln in lines(de.log_text() + cn.log_text()))

        # A clean stop closes with a frame, and the reason says so.
        c.start("DE")
        c.wait_until(lambda: len(linked(cn.log_text())) >= 2, what="CN to link DE again")
        before = len(_dropped(cn.log_text()))
        assert c.stop("DE") == 0
        c.wait_until(lambda: len(_dropped(cn.log_text())) > before, what="CN to notice DE stop")
        again = _dropped(cn.log_text())[before]
        assert again["reason"].startswith("closed by the peer (code 1001"), again


def _dropped(text: str) -> list[dict[str, Any]]:
    return [ln for ln in lines(text) if "dropped" in ln["msg"]]


def linked(text: str) -> list[dict[str, Any]]:
    # Either side may dial first after a restart: any link to DE counts.
    return [ln for ln in lines(text) if ln["msg"].startswith("peer DE linked (dialled by ")]
