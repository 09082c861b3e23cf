"""GET /capture.js: served small, cacheable and dependency-free (its behaviour: test_browser.py)."""

from __future__ import annotations

import json
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


CUSTOM = "td_[a-z0-9]{8}"
UUID = "6f1c0c9e-0000-4000-8000-000000000000"


@pytest.fixture
def custom_client(sqlite_url: str, tmp_path: Path) -> Any:
    """A test client of an app whose mapping file sets its own click-id pattern."""
    config = tmp_path / "bridge.toml"
    config.write_text(f'[attribution]\nclick_id_pattern = "{CUSTOM}"\n', encoding="utf-8")
    rt = build_runtime(sqlite_url, tmp_path, BRIDGE_CONFIG=str(config))
    app: Flask = create_app(rt=rt)
    yield app.test_client()
    rt.close()


def _check_line(script: str) -> str:
    return next(line for line in script.splitlines() if "var CLICK_ID" in line)


def test_a_custom_click_id_pattern_is_the_scripts_check(custom_client: Any) -> None:
    response = custom_client.get("/capture.js", buffered=True)
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.cache_control.public and response.cache_control.max_age == 3600
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    script = response.get_data(as_text=True)
    assert '"td_[a-z0-9]{8}"' in _check_line(script)
    assert script.replace(_check_line(script), "") == SCRIPT.read_text().replace(
        _check_line(SCRIPT.read_text()), ""
    )  # nothing else differs
    again = custom_client.get(
        "/capture.js", headers={"If-None-Match": response.headers["ETag"]}, buffered=True
    )
    assert again.status_code == 304


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize(
    ("pattern", "matches", "refuses"),
    [
        (CUSTOM, ["td_abcd1234", "TD_ABCD1234"], ["x td_abcd1234", UUID]),
        # Python-only syntax: JavaScript cannot compile it, so the script keeps the UUID check
        (r"(?P<cid>td_\w+)", [UUID], ["td_abcd1234"]),
    ],
)
def test_the_check_behaves_in_javascript(
    pattern: str, matches: list[str], refuses: list[str]
) -> None:
    from bridge.web.capture import script_for

    script = script_for(pattern)
    subprocess.run(["node", "--check", "-"], input=script, text=True, check=True, timeout=30)
    probe = _check_line(script) + (
        "\nconsole.log(JSON.stringify(process.argv.slice(1).map(function (v) "
        "{ return CLICK_ID.test(v); })));"
    )
    done = subprocess.run(["node", "-e", probe, "--", *matches, *refuses], capture_output=True,
                          text=True, check=True, timeout=30)  # fmt: skip
    assert json.loads(done.stdout) == [True] * len(matches) + [False] * len(refuses)
