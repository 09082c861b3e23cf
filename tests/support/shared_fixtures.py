"""Where the shared fixtures are, for every test that reads them.

The source is `../shared/fixtures` beside the checkout (it grows from session to session). A clone
on its own, without that folder beside it, uses the snapshot in `tests/fixtures/shared`;
`tests/test_fixture_snapshot.py` fails when the two differ, so the snapshot is renewed by copying
the folder over it (`cp -r ../shared/fixtures/. tests/fixtures/shared/`).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BESIDE = ROOT.parent / "shared" / "fixtures"
SNAPSHOT = ROOT / "tests" / "fixtures" / "shared"
FIXTURES = BESIDE if BESIDE.is_dir() else SNAPSHOT
