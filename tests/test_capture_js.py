"""GET /capture.js: served small, cacheable and dependency-free (its behaviour: test_browser.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from bridge.app import create_app
from tests.conftest import build_runtime

SCRIPT = Path(__file__).resolve().parents[1] / "bridge" / "static" / "capture.js"
MAX_BYTES = 8 * 1024


@pytest.fixture
def client(sqlite_url: str, tmp_path: Path) -> Any:
    """A test client of an app with default attribution."""
    config = tmp_path / "bridge.toml"
    config.write_text("", encoding="utf-8")
    rt = build_runtime(sqlite_url, tmp_path, BRIDGE_CONFIG=str(config))
    app: Flask = create_app(rt=rt)
    yield app.test_client()
    rt.close()


def test_served_as_javascript_and_cacheable(client: Any) -> None:
    response = client.get("/capture.js", buffered=True)
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.mimetype_params.get("charset") == "utf-8"
    assert response.cache_control.public
    assert response.cache_control.max_age == 3600
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response.get_data() == SCRIPT.read_bytes()
    assert "Access-Control-Allow-Origin" not in response.headers  # a <script> needs no CORS


def test_revalidates_with_its_etag(client: Any) -> None:
    etag = client.get("/capture.js", buffered=True).headers["ETag"]
    again = client.get("/capture.js", headers={"If-None-Match": etag}, buffered=True)
    assert again.status_code == 304
    assert again.get_data() == b""


def test_small_and_dependency_free() -> None:
    source = SCRIPT.read_text(encoding="utf-8")
    assert len(source.encode()) < MAX_BYTES
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)
    assert not re.search(r"\bimport\b|\brequire\(|https?://|eval\(|document\.write", code)
    assert source.lstrip().startswith("/*!")
    assert code.strip().startswith("(function ()") and code.strip().endswith("})();")


def test_reads_the_cookie_by_its_trackdesk_name() -> None:
    source = SCRIPT.read_text(encoding="utf-8")
    assert '"trakdesk_cid"' in source  # sic: Trackdesk's spelling
    assert '"client_reference_id"' in source and '"client-reference-id"' in source


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_parses_as_javascript() -> None:
    subprocess.run(["node", "--check", str(SCRIPT)], check=True, capture_output=True, timeout=30)


def test_packaged_with_the_bridge() -> None:
    pyproject = (SCRIPT.parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"static/*"' in pyproject
