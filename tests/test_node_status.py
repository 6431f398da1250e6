"""customs-node --version and customs-node status, against real node processes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from node.admin.cli import main
from node.admin.status import EXIT_DOWN, EXIT_NOT_READY
from tests.cluster import SCRIPT, Cluster


def test_version_names_the_installed_release() -> None:
    done = subprocess.run(
        [str(SCRIPT), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "customs-node 0.1.0"


def status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["status", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_status_reports_down_not_ready_and_ready(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Cluster(tmp_path / "net", ["CN", "DE"]) as cluster:
        cn = cluster["CN"]
        code, out, err = status(capsys, "--data-dir", str(cn.root))
        assert code == EXIT_DOWN, (out, err)
        assert err.startswith(f"CN: DOWN — no answer from {cn.url}/v1/status")

        # One of two validators: it runs, but a quorum is 2 and it hears only itself.
        cluster.start("CN")
        code, out, _ = status(capsys, "--config", str(cn.config))
        assert code == EXIT_NOT_READY
        assert "NOT READY — hears 1 of 2 validators, a quorum is 2" in out
        assert "0 of 1 peer connected: DE (down)" in out

        cluster.start("DE")
        cluster.wait_height(2)
        cluster.wait_until(lambda: main(["status", "--data-dir", str(cn.root)]) == 0, what="ready")
        capsys.readouterr()
        code, out, _ = status(capsys, "--data-dir", str(cn.root))
        assert code == 0
        assert out.startswith(f"CN at {cn.url}: READY\n")
        assert "1 of 1 peer connected: DE\n" in out
        assert "0 entries pending" in out

        code, out, _ = status(capsys, "--data-dir", str(cn.root), "--json")
        doc = json.loads(out)
        assert code == 0 and doc["ready"] is True and doc["member"] == "CN"
        assert doc["height"] >= 2 and doc["not_ready_reason"] is None


def test_status_without_a_node_toml_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = status(capsys, "--data-dir", str(tmp_path))
    assert code == 2
    assert "node.toml" in err and "cannot read" in err
    code, _, err = status(capsys)
    assert code == 2 and "give --config NODE_TOML or --data-dir DIR" in err


ALERTS = Path(__file__).resolve().parent.parent / "docs" / "deploy" / "prometheus-alerts.yml"


def test_top_once_and_the_alert_rules_name_real_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Cluster(tmp_path / "net", ["CN", "DE"]) as cluster:
        cluster.start()
        cluster.wait_height(2)
        cn = cluster["CN"]
        cluster.wait_until(lambda: main(["status", "--data-dir", str(cn.root)]) == 0, what="ready")
        capsys.readouterr()
        code = main(["top", "--data-dir", str(cn.root), "--once", "--interval", "0.5"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert f"CN {cn.url}  READY" in out
        assert re.search(r"height\s+\d+\s+\(\d+\.\d\d blocks/s\)", out), out
        assert re.search(r"mempool\s+0 entries pending", out), out
        assert re.search(r"DE\s+.\s*up\s+.\s*\d+", out), out
        exposition = cn.get("/metrics").body.decode()
    names = set(re.findall(r"^# TYPE (\S+)", exposition, re.M))
    wanted = set(re.findall(r"\b(customs_[a-z_]+)", ALERTS.read_text()))
    assert wanted, "no metric named in the alert rules"
    # A histogram's samples add _bucket to its name.
    missing = {w for w in wanted if w not in names and w.removesuffix("_bucket") not in names}
    assert not missing, f"alert rules name metrics no node exports: {missing}"


def test_top_of_a_node_that_is_down_exits_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Cluster(tmp_path / "net", ["CN"]) as cluster:
        code = main(["top", "--data-dir", str(cluster["CN"].root), "--once"])
    assert code == EXIT_DOWN and "CN: DOWN" in capsys.readouterr().err
