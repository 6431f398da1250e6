from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from ledger.keys import Domain, VerifyKey
from node import native

# CI gets more examples than a local edit-test loop, but stays within the time budget.
settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_configure(config: pytest.Config) -> None:
    # An extension built from an older source would be tested in place of the source.
    if stale := native.stale():
        pytest.exit(
            f"compiled modules are older than their sources: {', '.join(stale)}; run `make native`",
            returncode=4,
        )


def pytest_report_header() -> str:
    return native.describe()


@pytest.fixture
def entry_verifications(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The entries whose signatures are verified from now on (the real check still runs)."""
    verified: list[bytes] = []
    real = VerifyKey.verify

    def counted(self: VerifyKey, domain: Domain, chain_id: str, payload: bytes, sig: bytes) -> None:
        if domain is Domain.ENTRY:
            verified.append(payload)
        real(self, domain, chain_id, payload, sig)

    monkeypatch.setattr(VerifyKey, "verify", counted)
    return verified
