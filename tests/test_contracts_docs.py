"""docs/entries.md: every JSON example on the page is executed, in page order."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from contracts.runner import run_vector
from contracts.vectors import parse_vector
from tests.sandbox import Sandbox, sandbox_genesis

DOC = Path(__file__).resolve().parent.parent / "docs" / "entries.md"


def _examples() -> list[dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return [json.loads(block) for block in blocks]


def test_entry_examples_are_accepted_in_page_order() -> None:
    entries = [e for e in _examples() if "kind" in e]
    assert len(entries) >= 15
    assert {e["kind"] for e in entries} == {
        "cert.issue",
        "cert.amend",
        "cert.suspend",
        "cert.reinstate",
        "cert.revoke",
        "cert.recognize",
        "shipment.declare",
        "shipment.event",
    }
    box = Sandbox(sandbox_genesis(entries[0]["chain"]))
    for example in entries:
        assert set(example) == {"chain", "kind", "author", "ts", "body"}
        outcome = box.submit(
            example["author"],
            example["kind"],
            example["body"],
            ts=example["ts"],
            block_time=example["ts"],
        )
        assert outcome == "accept", (example, outcome)


def test_vector_example_runs() -> None:
    (doc,) = [e for e in _examples() if "steps" in e]
    vector = parse_vector("docs/entries.md", json.dumps(doc).encode())
    passed, mismatches = run_vector(vector)
    assert (passed, mismatches) == (len(vector.steps), [])
