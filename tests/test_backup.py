"""customs-node export / import on a real node's chain: a round trip that another node
then serves, and every kind of bad file refused with nothing written."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.block import Commit
from ledger.codec import encode
from ledger.store import Store
from node.admin.backup import MAGIC, read_frames, write_frame
from node.admin.cli import main
from tests import samples
from tests.cluster import Cluster

_serial = itertools.count(1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    """CN's chain (single validator, 12 entries over several blocks), exported once CN
    stopped; DE, a member of the same network, has never run."""
    root = tmp_path_factory.mktemp("backup")
    with Cluster(root / "net", ["CN", "DE"], validators=["CN"]) as cluster:
        cluster.start("CN")
        cn = cluster["CN"]
        for _ in range(4):
            ids = []
            for _ in range(3):
                body = samples.cert_issue(f"CN-B-{next(_serial):06d}", "CN")
                reply = cn.post("/v1/submit", {"kind": "cert.issue", "body": body})
                assert reply.status == 202
                ids.append(reply.json()["id"])
            cluster.wait_committed(ids, ["CN"])
        assert cluster.stop("CN") == 0
        out = root / "cn.export"
        assert main(["export", "--data-dir", str(cn.root), "--out", str(out)]) == 0
        yield cluster, out


def frames(path: Path) -> list[Any]:
    with path.open("rb") as handle:
        return list(read_frames(handle, 1 << 24))


def write(path: Path, items: list[Any]) -> Path:
    buffer = io.BytesIO()
    buffer.write(MAGIC)
    for item in items:
        write_frame(buffer, item)
    path.write_bytes(buffer.getvalue())
    return path


def head_of(node_dir: Path, cluster: Cluster) -> tuple[int, bytes | None]:
    with Store.open(node_dir / "data" / "ledger", cluster.genesis) as store:
        return store.height, store.head_hash()


def test_export_needs_the_node_stopped(
    exported: tuple[Cluster, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, _ = exported
    cn = cluster["CN"]
    cluster.start("CN")
    try:
        code = main(["export", "--data-dir", str(cn.root), "--out", str(tmp_path / "x")])
        assert code == 2 and "in use" in capsys.readouterr().err
        assert not (tmp_path / "x").exists()
    finally:
        assert cluster.stop("CN") == 0


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("forged_commit", "block 3 is refused: precommit signature of CN does not verify"),
        ("forged_entry", "block 2 is refused"),
        ("truncated", "without its trailer: cut short"),
        ("cut_mid_frame", "cut short"),
        ("other_chain", "not this node's"),
        ("reordered", "block 2 is refused: the block is for height 3"),
        ("not_an_export", "not a customs-ledger export"),
    ],
)
def test_a_bad_file_is_refused_and_changes_nothing(
    exported: tuple[Cluster, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    message: str,
) -> None:
    cluster, good = exported
    items = frames(good)
    bad = tmp_path / "bad.export"
    if case == "forged_commit":
        commit = Commit.decode(items[3]["commit"])
        member, sig = commit.votes[0]
        forged = Commit(commit.height, commit.round, commit.block, ((member, bytes(64)),))
        assert forged.votes != commit.votes and sig != bytes(64)
        items[3] = {"block": items[3]["block"], "commit": forged.encode()}
        write(bad, items)
    elif case == "forged_entry":
        raw = bytearray(items[2]["block"])
        at = raw.rindex(b"Shenzhen")
        raw[at] ^= 0x20  # the holder's name, inside a signed entry
        items[2] = {"block": bytes(raw), "commit": items[2]["commit"]}
        write(bad, items)
    elif case == "truncated":
        write(bad, items[:-3])
    elif case == "cut_mid_frame":
        bad.write_bytes(good.read_bytes()[:-40])
    elif case == "other_chain":
        write(bad, [{**items[0], "chain": "customs-other-1"}, *items[1:]])
    elif case == "reordered":
        write(bad, [items[0], items[1], items[3], items[2], *items[4:]])
    else:
        bad.write_bytes(encode({"hello": 1}))
    de = cluster["DE"]
    before = sorted(p.name for p in (de.root / "data").iterdir())
    code = main(["import", "--data-dir", str(de.root), "--in", str(bad)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert sorted(p.name for p in (de.root / "data").iterdir()) == before


def test_import_refuses_a_node_that_has_a_chain(
    exported: tuple[Cluster, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, good = exported
    cn = cluster["CN"]
    before = head_of(cn.root, cluster)
    assert main(["import", "--data-dir", str(cn.root), "--in", str(good)]) == 2
    assert "already holds a chain" in capsys.readouterr().err
    assert head_of(cn.root, cluster) == before


def test_round_trip_a_new_node_serves_the_same_chain(
    exported: tuple[Cluster, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, good = exported
    cn, de = cluster["CN"], cluster["DE"]
    assert main(["import", "--data-dir", str(de.root), "--in", str(good)]) == 0
    assert "every commit and block verified" in capsys.readouterr().err
    height, head = head_of(de.root, cluster)
    trailer = frames(good)[-1]
    assert (height, head) == (trailer["end"], trailer["head"]) and height >= 4
    # CN ran on since the export (test_export_needs_the_node_stopped): same blocks.
    assert cn.root.exists() and head_of(cn.root, cluster)[0] >= height
    cluster.start("DE")
    block = de.get(f"/v1/blocks/{height}").json()
    assert bytes.fromhex(block["hash"]) == head
    certificates = de.get("/v1/certificates?limit=50").json()["items"]
    assert len(certificates) == 12  # the search indexes came with the re-execution
    cluster.start("CN")
    cluster.wait_height(height + 1, ["DE"])  # and it follows the network from there
