"""Valid chains for the store tests, and the child process of the crash test.

``next_block`` builds the block that extends a store's head: a real header, entries
signed by seeded member keys, and a commit precommitted by every validator.

Run as ``python -m tests.store_crash_child STORE_DIR SEED``: it opens the store, prints
``ready <height>`` and commits blocks of random sizes until it is killed, printing
``committed <height>`` each time ``commit_block`` has returned.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence

from ledger.block import ZERO_HASH, Block, Commit, Header, sign_commit
from ledger.entry import SignedEntry
from ledger.genesis import Genesis
from ledger.store import Store, StoreView
from tests.factories import GENESIS_TIME, make_genesis, member_key, sign_entry

STATE_ROOT = bytes(range(32))  # the state map is not the store's business


def make_entries(first: int, count: int, author: str = "CN") -> list[SignedEntry]:
    """``count`` distinct cert.issue-like entries numbered from ``first``."""
    return [
        sign_entry(
            author,
            "cert.issue",
            {
                "cert_id": f"CERT-{n:08d}",
                "type": "origin",
                "exporter": "Shenzhen Example Electronics Co",
                "consignee": "Rotterdam Import BV",
                "hs_codes": ["851762", "847130"],
                "destination": "NL",
                "ucr": f"6CN{n % 7:09d}",
            },
            ts=GENESIS_TIME + n,
        )
        for n in range(first, first + count)
    ]


def subjects_of(entries: Sequence[SignedEntry]) -> list[list[str]]:
    return [[f"cert/{e.entry.body['cert_id']}", f"shipment/{e.entry.body['ucr']}"] for e in entries]


def next_block(
    store: Store | StoreView, genesis: Genesis, entries: Sequence[SignedEntry], round_: int = 0
) -> tuple[Block, Commit]:
    """The block of ``entries`` that extends ``store``'s head, and its commit."""
    height = store.height + 1
    last = store.get_commit(height - 1)
    size, root = store.log_after([e.wire_bytes for e in entries])
    header = Header(
        chain=genesis.chain_id,
        height=height,
        time=GENESIS_TIME + height * 500,
        prev=store.head_hash() or ZERO_HASH,
        proposer=genesis.validators.proposer(height, round_),
        entries=len(entries),
        log_size=size,
        log_root=root,
        state_root=STATE_ROOT,
        validators=genesis.validators.hash(),
        last_commit=ZERO_HASH if last is None else last.hash(),
    )
    return Block(header, tuple(entries)), make_commit(genesis, header, round_)


def make_commit(genesis: Genesis, header: Header, round_: int = 0, signers: int = 0) -> Commit:
    """A commit signed by the first ``signers`` validators (all of them when 0)."""
    ids = genesis.validators.ids[: signers or None]
    keys = [(m, member_key(m)) for m in ids]
    return sign_commit(keys, header.height, header.hash(), genesis.chain_id, round_)


def main(argv: Sequence[str]) -> int:
    path, seed = argv[0], int(argv[1])
    rng = random.Random(seed)
    genesis = make_genesis()
    with Store.open(path, genesis) as store:
        print(f"ready {store.height}", flush=True)
        while True:
            # Entry numbers continue from the log size, so restarts never repeat an id.
            entries = make_entries(store.log_size(), rng.choice((1, 5, 40, 200, 600)))
            block, commit = next_block(store, genesis, entries)
            extra = {b"x:test/height": b"%d" % block.header.height}
            store.commit_block(block, commit, subjects_of(entries), extra)
            print(f"committed {block.header.height}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
