"""The repository's snapshot of the shared fixtures equals the folder beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.shared_fixtures import BESIDE, FIXTURES, SNAPSHOT


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by its relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_snapshot_holds_the_fixtures_the_tests_read() -> None:
    assert {"stripe_signature_vectors.json", "standard_webhooks_vectors.json"} <= set(
        files(SNAPSHOT)
    )
    assert len(list((SNAPSHOT / "stripe").glob("*.json"))) >= 10


def test_the_snapshot_equals_the_shared_fixtures_beside_the_checkout() -> None:
    if not BESIDE.is_dir():
        pytest.skip("no ../shared beside this clone: the tests read the snapshot")
    assert FIXTURES == BESIDE  # the source wins where it is present
    beside, snapshot = files(BESIDE), files(SNAPSHOT)
    assert sorted(beside) == sorted(snapshot), "renew tests/fixtures/shared from ../shared/fixtures"
    changed = [name for name in beside if beside[name] != snapshot[name]]
    assert changed == [], "renew tests/fixtures/shared from ../shared/fixtures"
