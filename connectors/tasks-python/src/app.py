"""The `tasks` example connector, in Python.

Behaviour: docs/authoring/tasks-example.md (identical in every language).
Build: ./build.sh (componentize-py turns this module into a WebAssembly
component of the `connector` world in ../../wit or ./wit).

componentize-py calls the methods of the class named `WitWorld` in this
module for the world's exports. A method whose WIT result is
`result<T, error>` returns T on success and raises
`Err(<one of the Error_* cases>)` on failure; any other exception is a bug
and traps the call (the host answers 500 CONNECTOR_TRAPPED).
"""

import json
from typing import Any, Dict, List, NoReturn, Optional, Tuple
from urllib.parse import quote

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.plugboard_connector_types import (
    Auth,
    AuthScheme_Bearer,
    Error_Config,
    Error_InvalidInput,
    Error_NotFound,
    Error_RateLimited,
    Error_Temporary,
    Error_Unauthorized,
    Error_Upstream,
    Event,
    Manifest,
    MethodInfo,
    RateLimit,
    SharedSecret,
    UpstreamFailure,
    WebhookConfig,
    WebhookOutcome,
    WebhookRequest,
    WebhookScheme_SharedSecret,
)

from plugboard_http import HttpError, Response, request

# The only place the connector's name appears (`plugboard new` replaces it).
CONNECTOR_NAME = "tasks"
VERSION = "0.1.0"
DEFAULT_API_BASE = "https://tasks.example.com/api"

_TASK_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "done": {"type": "boolean"},
    },
    "required": ["id", "title", "done"],
}

_CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "api_base": {
            "type": "string",
            "format": "uri",
            "default": DEFAULT_API_BASE,
            "description": "Base URL of the Tasks API",
        }
    },
    "additionalProperties": False,
}

_CREDENTIAL_SCHEMA = {
    "type": "object",
    "properties": {
        "api_token": {"type": "string", "description": "API token"},
        "webhook_secret": {
            "type": "string",
            "description": "Shared secret Tasks sends with webhooks",
        },
    },
    "required": ["api_token"],
    "additionalProperties": False,
}


def _object_schema(properties: Dict[str, Any], required: List[str]) -> Dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


# (name, description, params schema, result schema), in manifest order.
_METHODS: List[Tuple[str, str, Dict[str, Any], Dict[str, Any]]] = [
    (
        "echo",
        "Returns `message` unchanged; no network.",
        _object_schema({"message": {"type": "string"}}, ["message"]),
        _object_schema({"message": {"type": "string"}}, ["message"]),
    ),
    (
        "get_task",
        "Fetches one task by id.",
        _object_schema({"id": {"type": "string", "minLength": 1}}, ["id"]),
        _TASK_SCHEMA,
    ),
    (
        "create_task",
        "Creates a task.",
        _object_schema({"title": {"type": "string", "minLength": 1}}, ["title"]),
        _TASK_SCHEMA,
    ),
]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# --- errors -----------------------------------------------------------------


def _invalid(message: str) -> NoReturn:
    raise Err(Error_InvalidInput(message))


def _upstream_message(resp: Response) -> str:
    """The body's string `error` field, else `HTTP <status>`."""
    try:
        body = json.loads(resp.body)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return f"HTTP {resp.status}"


def _retry_after_secs(resp: Response) -> Optional[int]:
    value = resp.header("retry-after")
    # Only the delta-seconds form; an HTTP-date is rare and left to the host,
    # which also reads Retry-After itself.
    if value is None or not value.strip().isdigit():
        return None
    return min(int(value.strip()), 0xFFFFFFFF)  # WIT u32


def _raise_for_status(resp: Response) -> None:
    """Maps a non-2xx answer to the WIT error (the table of the spec)."""
    status = resp.status
    if 200 <= status < 300:
        return
    message = _upstream_message(resp)
    if status in (400, 422):
        raise Err(Error_InvalidInput(message))
    if status in (401, 403):
        raise Err(Error_Unauthorized(message))
    if status == 404:
        raise Err(Error_NotFound(message))
    if status == 429:
        raise Err(Error_RateLimited(RateLimit(message, _retry_after_secs(resp))))
    if 500 <= status < 600:
        raise Err(Error_Temporary(message))
    raise Err(Error_Upstream(UpstreamFailure(status, message)))


def _unexpected_body(resp: Response) -> NoReturn:
    raise Err(Error_Upstream(UpstreamFailure(resp.status, "unexpected response body")))


# --- the Tasks API ----------------------------------------------------------


def _api_base() -> str:
    raw = host.get_config("api_base")  # JSON text, e.g. "\"https://…\"", or None
    if raw is None:
        base = DEFAULT_API_BASE
    else:
        base = json.loads(raw)
        if not isinstance(base, str):
            # The config schema says string and the host validated it; defensive.
            raise Err(Error_Config("api_base must be a string"))
    return base[:-1] if base.endswith("/") else base


def _call(method: str, path: str, body: Optional[Any] = None) -> Response:
    headers = [("accept", "application/json")]
    data = None
    if body is not None:
        headers.append(("content-type", "application/json"))
        data = json.dumps(body).encode("utf-8")
    try:
        resp = request(method, _api_base() + path, headers, data)
    except HttpError as e:
        host.log(
            host.LogLevel.WARN,
            "request failed",
            [host.LogField("method", method), host.LogField("error", e.code_name)],
        )
        raise Err(Error_Temporary(f"request failed: {e.code_name}")) from None
    _raise_for_status(resp)
    return resp


def _task_from(resp: Response) -> Dict[str, Any]:
    """The answer reduced to id, title, done; anything else is unexpected."""
    try:
        body = json.loads(resp.body)
    except ValueError:
        _unexpected_body(resp)
    if not (
        isinstance(body, dict)
        and isinstance(body.get("id"), str)
        and isinstance(body.get("title"), str)
        and isinstance(body.get("done"), bool)
    ):
        _unexpected_body(resp)
    return {"id": body["id"], "title": body["title"], "done": body["done"]}


def _echo(params: Dict[str, Any]) -> Dict[str, Any]:
    message = params.get("message")
    if not isinstance(message, str):
        _invalid("message must be a string")
    if message == "":
        _invalid("message must not be empty")
    return {"message": message}


def _get_task(params: Dict[str, Any]) -> Dict[str, Any]:
    task_id = params.get("id")
    if not isinstance(task_id, str) or task_id == "":
        _invalid("id must be a non-empty string")
    # One path segment: `/`, `?`, `#`, spaces… are all percent-encoded.
    return _task_from(_call("GET", "/tasks/" + quote(task_id, safe="")))


def _create_task(params: Dict[str, Any]) -> Dict[str, Any]:
    title = params.get("title")
    if not isinstance(title, str) or title == "":
        _invalid("title must be a non-empty string")
    return _task_from(_call("POST", "/tasks", {"title": title}))


_HANDLERS = {"echo": _echo, "get_task": _get_task, "create_task": _create_task}


# --- the exports ------------------------------------------------------------


class WitWorld(wit_world.WitWorld):
    def describe(self) -> Manifest:
        return Manifest(
            name=CONNECTOR_NAME,
            version=VERSION,
            description=(
                "Example connector for the Tasks API: reads and creates tasks, "
                "receives task webhooks."
            ),
            methods=[
                MethodInfo(name, description, _compact(params), _compact(result))
                for name, description, params, result in _METHODS
            ],
            config_schema=_compact(_CONFIG_SCHEMA),
            credential_schema=_compact(_CREDENTIAL_SCHEMA),
            auth=Auth(
                scheme=AuthScheme_Bearer("api_token"),
                hosts=["{api_base}"],
                static_headers=[],
            ),
            hosts=["{api_base}"],
            webhook=WebhookConfig(
                scheme=WebhookScheme_SharedSecret(
                    SharedSecret(header="x-tasks-secret", secret_field="webhook_secret")
                ),
                delivery_id_header="x-tasks-delivery",
            ),
            rate_limit=None,
        )

    def test_connection(self) -> str:
        resp = _call("GET", "/me")
        try:
            body = json.loads(resp.body)
        except ValueError:
            _unexpected_body(resp)
        if not (isinstance(body, dict) and isinstance(body.get("name"), str)):
            _unexpected_body(resp)
        return f"connected as {body['name']}"

    def invoke(self, method: str, params: str) -> str:
        handler = _HANDLERS.get(method)
        if handler is None:
            _invalid(f"unknown method `{method}`")
        # The host validated params against the schema before calling; a
        # direct caller (a conformance check) may not have.
        try:
            parsed = json.loads(params)
        except ValueError:
            _invalid("params must be a JSON object")
        if not isinstance(parsed, dict):
            _invalid("params must be a JSON object")
        return json.dumps(handler(parsed))

    def handle_webhook(self, request: WebhookRequest) -> WebhookOutcome:
        # The host verified x-tasks-secret before calling this.
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            _invalid("body is not valid JSON")
        if not isinstance(body, dict):
            _invalid("body must be a JSON object")
        kind, event_id, task = body.get("type"), body.get("id"), body.get("task")
        if not isinstance(kind, str):
            _invalid("`type` must be a string")
        if not isinstance(event_id, str):
            _invalid("`id` must be a string")
        if not isinstance(task, dict):
            _invalid("`task` must be an object")
        return WebhookOutcome(
            response=None,
            events=[Event(kind=kind, id=event_id, payload=json.dumps(task))],
        )
