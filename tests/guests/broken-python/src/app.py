"""A deliberately broken Python connector, for testing how the host copes.

Each method breaks the contract in one way a Python author plausibly could.
None of them may crash the host; each call must end in an error answer (or,
where the host cannot tell, a documented success). `describe` is correct so
the component uploads.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports.plugboard_connector_types import (
    Auth,
    AuthScheme_None_,
    Error_InvalidInput,
    Manifest,
    MethodInfo,
    WebhookOutcome,
    WebhookRequest,
)

CONNECTOR_NAME = "broken-python"

_ANY = json.dumps({"type": "object"})
_METHODS = [
    (
        "wrong_result",
        "Returns a list although its result schema requires an object with `id`.",
        _ANY,
        json.dumps({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}),
    ),
    ("raise_exception", "Raises ValueError('boom') instead of a WIT error.", _ANY, _ANY),
    (
        "undeclared_error",
        "Raises Err('not found'): a bare string, not one of the Error_* cases.",
        _ANY,
        _ANY,
    ),
    ("returns_dict", "Returns a dict instead of JSON text (forgot json.dumps).", _ANY, _ANY),
    ("lazy_import", "Imports a stdlib module at call time, not at the top level.", _ANY, _ANY),
]


class WitWorld(wit_world.WitWorld):
    def describe(self) -> Manifest:
        return Manifest(
            name=CONNECTOR_NAME,
            version="0.1.0",
            description="Deliberately broken connector for host tests.",
            methods=[MethodInfo(n, d, p, r) for n, d, p, r in _METHODS],
            config_schema=_ANY,
            credential_schema=_ANY,
            auth=Auth(scheme=AuthScheme_None_(), hosts=[], static_headers=[]),
            hosts=[],
            webhook=None,
            rate_limit=None,
        )

    def test_connection(self) -> str:
        return "ok"

    def invoke(self, method: str, params: str) -> str:
        if method == "wrong_result":
            return json.dumps([1, 2, 3])
        if method == "raise_exception":
            raise ValueError("boom")
        if method == "undeclared_error":
            raise Err("not found")
        if method == "returns_dict":
            return {"id": "1"}  # type: ignore[return-value]
        if method == "lazy_import":
            import decimal

            return json.dumps({"value": str(decimal.Decimal("1.10") + decimal.Decimal("2.20"))})
        raise Err(Error_InvalidInput(f"unknown method `{method}`"))

    def handle_webhook(self, request: WebhookRequest) -> WebhookOutcome:
        return WebhookOutcome(response=None, events=[])
