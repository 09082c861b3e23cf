"""`docs/openapi.yaml` is a valid OpenAPI document and describes every route the app registers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate

from tests.test_generic_hook import CONVERSION, LINK, STATUS

SPEC_PATH = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Described from the contract while its blueprint is still being written; the check below only
# tolerates these while the app does not register them.
NOT_YET_REGISTERED = {("/admin", "get"), ("/admin/replay", "post")}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The parsed document."""
    data: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return data


def documented(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (path, method) the document describes."""
    return {
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def registered(app: Any) -> set[tuple[str, str]]:
    """Every (path, method) the app serves; Flask's automatic HEAD and OPTIONS left out."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        methods = set(rule.methods or ()) - {"HEAD", "OPTIONS"}
        # A view that lists OPTIONS itself answers it (a CORS preflight): that is API too.
        if "OPTIONS" in (rule.methods or ()) and not rule.provide_automatic_options:
            methods.add("OPTIONS")
        routes |= {(path, method.lower()) for method in methods}
    return routes


def test_the_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec["openapi"].startswith("3.1")


def test_every_registered_route_is_described(spec: dict[str, Any], app: Any) -> None:
    missing = registered(app) - documented(spec)
    assert not missing, f"routes the app serves that docs/openapi.yaml does not describe: {missing}"


def test_nothing_is_described_that_the_app_does_not_serve(spec: dict[str, Any], app: Any) -> None:
    extra = documented(spec) - registered(app) - NOT_YET_REGISTERED
    assert not extra, f"docs/openapi.yaml describes routes the app does not serve: {extra}"


def test_every_error_answer_has_the_error_schema(spec: dict[str, Any]) -> None:
    for path, method in documented(spec):
        for status, response in spec["paths"][path][method]["responses"].items():
            if int(status) < 400:
                continue
            if "$ref" in response:
                response = _resolve(spec, response["$ref"])
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)


def test_error_schema_is_one_human_sentence(spec: dict[str, Any]) -> None:
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["type"] == "string"


def test_generic_body_is_a_discriminated_one_of(spec: dict[str, Any]) -> None:
    body = spec["paths"]["/webhooks/generic"]["post"]["requestBody"]["content"]
    schema = _resolve(spec, body["application/json"]["schema"]["$ref"])
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(schema["discriminator"]["mapping"]) == {"conversion", "link", "status"}
    assert len(schema["oneOf"]) == 3


def test_both_generic_signature_schemes_are_alternatives(spec: dict[str, Any]) -> None:
    security = spec["paths"]["/webhooks/generic"]["post"]["security"]
    assert security == [{"standardWebhooksSignature": []}, {"plainHmacSignature": []}]


@pytest.mark.parametrize("example", [CONVERSION, LINK, STATUS], ids=lambda e: e["type"])
def test_the_contract_examples_match_the_body_schemas(
    spec: dict[str, Any], example: dict[str, Any]
) -> None:
    import jsonschema  # installed with openapi-spec-validator

    name = {"conversion": "GenericConversion", "link": "GenericLink", "status": "GenericStatus"}
    schema = _inline(spec, spec["components"]["schemas"][name[example["type"]]])
    jsonschema.Draft202012Validator(schema).validate(example)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate({**example, "ammount": "1"})


def _resolve(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    """Follow one local `$ref`."""
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    result: dict[str, Any] = node
    return result


def _inline(spec: dict[str, Any], schema: Any) -> Any:
    """A schema with every local `$ref` replaced by its target (the document has no cycles)."""
    text = json.dumps(schema)
    if '"$ref"' not in text:
        return schema
    if isinstance(schema, dict):
        if "$ref" in schema:
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return {**_inline(spec, _resolve(spec, schema["$ref"])), **_inline(spec, rest)}
        return {key: _inline(spec, value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inline(spec, item) for item in schema]
    return schema


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/healthz", None),
        ("get", "/readyz", None),
        ("get", "/metrics", None),
        ("get", "/capture.js", None),
        ("post", "/webhooks/stripe", b"{}"),  # no signature
        ("post", "/webhooks/generic", b"{}"),  # off: no GENERIC_WEBHOOK_SECRET
        ("post", "/capture", b"{}"),
        ("options", "/capture", None),
        ("post", "/capture/tokens", b"{}"),  # off: no BRIDGE_API_TOKEN
        ("get", "/admin", None),  # off: no ADMIN_PASSWORD
        ("post", "/admin/replay", b""),
    ],
)
def test_live_answers_are_documented(
    spec: dict[str, Any], client: Any, method: str, path: str, body: bytes | None
) -> None:
    import jsonschema

    if (path, method) not in registered(client.application):
        pytest.skip(f"{method.upper()} {path} is not registered yet")
    response = client.open(path, method=method.upper(), data=body,
                           content_type="application/json")  # fmt: skip
    response.close()  # a file answer (capture.js) holds its file open until closed
    documented_answers = spec["paths"][path][method]["responses"]
    assert str(response.status_code) in documented_answers
    answer = documented_answers[str(response.status_code)]
    if "$ref" in answer:
        answer = _resolve(spec, answer["$ref"])
    if response.is_json:
        schema = _inline(spec, answer["content"]["application/json"]["schema"])
        jsonschema.Draft202012Validator(schema).validate(response.get_json())
    else:
        assert response.mimetype in answer.get("content", {response.mimetype: None})
