"""Server processes freeze their start-up objects out of the garbage collector's way."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bridge.app import create_app
from bridge.heap import settle
from tests.conftest import BASE_ENV, make_settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Start and end each test with nothing frozen (frozen objects are never collected)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_settle_freezes_what_is_alive_and_still_collects_later_garbage(unfrozen: None) -> None:
    settle()
    assert gc.get_freeze_count() > 1000  # this test process's modules, at the least

    class Node:
        """A reference cycle made after the freeze: the collector must still find it."""

        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2


def test_the_app_built_from_the_environment_freezes(
    unfrozen: None, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`create_app()` without arguments is gunicorn's worker loading the app (Procfile)."""
    monkeypatch.chdir(tmp_path)
    for key, value in BASE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/heap.sqlite3")
    app = create_app()
    try:
        assert gc.get_freeze_count() > 1000
    finally:
        app.extensions["bridge"].close()


def test_apps_built_with_injected_settings_do_not_freeze(unfrozen: None, tmp_path) -> None:
    """Tests build many apps in one process: freezing there would keep every one alive."""
    app = create_app(make_settings(DATABASE_URL=f"sqlite:///{tmp_path}/heap.sqlite3"))
    try:
        assert gc.get_freeze_count() == 0
    finally:
        app.extensions["bridge"].close()
