"""Blocking outbound HTTP for Plugboard connectors written in Python.

Copy this file into your connector's `src/` as is; it depends only on the
bindings componentize-py generates for the `connector` world (package
`wit_world`) and the standard library.

    from plugboard_http import request, HttpError

    try:
        resp = request("GET", "https://api.example.com/me",
                       headers=[("accept", "application/json")])
    except HttpError as e:
        ...  # e.code_name == "HttpRequestDenied", "ConnectionRefused", ...
    resp.status           # 200
    resp.header("etag")   # first value of a header, or None
    resp.body             # bytes
    status, headers, body = resp   # it is also a plain tuple

Why it exists: Python's `urllib`/`http.client`/`requests` need sockets, and
a Plugboard connector has none. All outbound HTTP goes through the imported
`wasi:http/outgoing-handler`, which the host implements: it checks the URL
against the manifest's hosts, adds credentials, applies rate budgets,
retries idempotent requests and enforces the invocation's deadline and size
caps. So this helper deliberately has no timeout, retry or auth logic of its
own: the host does all of that and reports the outcome as a wasi:http
`error-code`, which surfaces here as `HttpError`.

Resource hygiene matters in the component model: a child resource (a body
stream, a header map) must be dropped before its parent, or the guest traps.
The code below therefore drops every resource explicitly, in order, with
`with` blocks, instead of leaving it to the garbage collector.
"""

from typing import List, NamedTuple, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from componentize_py_types import Err
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as http

# Bytes asked for per read; the host may return fewer.
_READ_SIZE = 64 * 1024
# `blocking-write-and-flush` accepts at most 4096 bytes per call (wasi:io).
_WRITE_CHUNK = 4096

_METHODS = {
    "GET": http.Method_Get(),
    "HEAD": http.Method_Head(),
    "POST": http.Method_Post(),
    "PUT": http.Method_Put(),
    "DELETE": http.Method_Delete(),
    "CONNECT": http.Method_Connect(),
    "OPTIONS": http.Method_Options(),
    "TRACE": http.Method_Trace(),
    "PATCH": http.Method_Patch(),
}

Headers = Sequence[Tuple[str, str]]


class HttpError(Exception):
    """The request failed before a complete response arrived.

    `code` is the wasi:http `error-code` value (an instance of one of the
    `wit_world.imports.wasi_http_types.ErrorCode_*` classes), or None when the
    failure was not reported as one (e.g. an invalid URL or header caught
    here). `code_name` is the case name in CamelCase, e.g.
    `HttpRequestDenied` (the host's egress policy refused the destination),
    `ConnectionRefused`, `ConnectionTimeout`, `HttpResponseTimeout`,
    `HttpResponseBodySize` (over the host's cap); for failures detected in
    this module it is `InvalidRequest`.
    """

    def __init__(self, code_name: str, code: Optional[object] = None, detail: str = ""):
        self.code_name = code_name
        self.code = code
        self.detail = detail
        super().__init__(f"{code_name}: {detail}" if detail else code_name)


class Response(NamedTuple):
    """A complete response: status, headers (in received order), body."""

    status: int
    headers: List[Tuple[str, str]]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        """First value of header `name` (case-insensitive), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


def request(
    method: str,
    url: str,
    headers: Optional[Headers] = None,
    body: Union[bytes, str, None] = None,
) -> Response:
    """Sends one HTTP request and waits for the whole response.

    `url` must be absolute (`https://host[:port]/path?query`). `headers` is a
    list of (name, value) pairs; never set `authorization` for the instance's
    credentials, the host adds it. A `str` body is sent as UTF-8.

    Any HTTP status is a `Response`, including 4xx and 5xx: mapping statuses
    to errors is the connector's business. Raises `HttpError` when no
    complete response could be obtained.
    """
    parts = urlsplit(url)
    if parts.scheme == "https":
        scheme = http.Scheme_Https()
    elif parts.scheme == "http":
        scheme = http.Scheme_Http()
    else:
        raise HttpError("InvalidRequest", detail=f"unsupported URL scheme in {url!r}")
    if not parts.netloc:
        raise HttpError("InvalidRequest", detail=f"URL has no host: {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query

    wit_method = _METHODS.get(method.upper()) or http.Method_Other(method)
    if isinstance(body, str):
        body = body.encode("utf-8")

    try:
        fields = http.Fields.from_list(
            [(name, value.encode("utf-8")) for name, value in (headers or [])]
        )
    except Err as e:
        raise HttpError("InvalidRequest", detail=f"invalid header: {_case_name(e.value)}") from None

    # The request takes ownership of `fields`, and `handle` takes ownership
    # of the request (even when it fails), so neither is dropped here.
    req = http.OutgoingRequest(fields)
    try:
        req.set_method(wit_method)
        req.set_scheme(scheme)
        req.set_authority(parts.netloc)
        req.set_path_with_query(path)
    except Err:
        # The setters refuse syntactically invalid values without saying
        # which; name the request instead.
        with req:
            pass
        raise HttpError("InvalidRequest", detail=f"invalid method or URL: {method} {url!r}") from None
    outgoing_body = req.body()
    # Hand the request to the host first, then stream the body: a host may
    # start sending before the body is complete, and writing a large body
    # into a request nobody reads yet could block.
    try:
        future = outgoing_handler.handle(req, None)
    except Err as e:
        with outgoing_body:
            pass
        raise _http_error(e.value) from None

    with future:
        _send_body(outgoing_body, body or b"")
        return _receive(future)


def _send_body(outgoing_body: "http.OutgoingBody", data: bytes) -> None:
    try:
        with outgoing_body.write() as out:
            for start in range(0, len(data), _WRITE_CHUNK):
                out.blocking_write_and_flush(data[start : start + _WRITE_CHUNK])
    except Err as e:
        # The host stopped reading (it refused the request, or the peer went
        # away); the real reason arrives through the response future.
        _ = e
    try:
        # `finish` consumes the body handle; it tells the host the body is
        # complete (an unfinished body means a corrupt request).
        http.OutgoingBody.finish(outgoing_body, None)
    except Err as e:
        raise _http_error(e.value) from None


def _receive(future: "http.FutureIncomingResponse") -> Response:
    while True:
        ready = future.get()
        if ready is not None:
            break
        with future.subscribe() as pollable:
            pollable.block()
    # Outer result: Err only if the response was already taken (cannot
    # happen here). Inner result: the response, or the request's error code.
    if isinstance(ready, Err):
        raise HttpError("InternalError", detail="response already consumed")
    inner = ready.value
    if isinstance(inner, Err):
        raise _http_error(inner.value)

    with inner.value as resp:
        status = resp.status()
        with resp.headers() as fields:
            headers = [
                (name, value.decode("utf-8", errors="replace"))
                for name, value in fields.entries()
            ]
        incoming_body = resp.consume()
        chunks: List[bytes] = []
        with incoming_body.stream() as stream:
            while True:
                try:
                    chunk = stream.read(_READ_SIZE)
                except Err as e:
                    if isinstance(e.value, streams.StreamError_Closed):
                        break  # end of body
                    raise _stream_error(e.value) from None
                if chunk:
                    chunks.append(chunk)
                else:
                    # Nothing available yet: wait for more instead of spinning.
                    with stream.subscribe() as pollable:
                        pollable.block()
        # The stream is dropped; finishing the body yields the trailers,
        # which no connector needs: drop them right away.
        with http.IncomingBody.finish(incoming_body):
            pass
    return Response(status, headers, b"".join(chunks))


def _stream_error(err: "streams.StreamError") -> HttpError:
    # `last-operation-failed` carries a wasi:io error; the host usually
    # attaches the wasi:http error-code (e.g. HttpResponseBodySize) to it.
    with err.value as io_error:
        code = http.http_error_code(io_error)
        if code is not None:
            return _http_error(code)
        return HttpError("InternalError", detail=io_error.to_debug_string())


def _http_error(code: object) -> HttpError:
    detail = ""
    payload = getattr(code, "value", None)
    if isinstance(payload, str):
        detail = payload  # e.g. InternalError("...")
    return HttpError(_case_name(code), code, detail)


def _case_name(value: object) -> str:
    """`ErrorCode_HttpRequestDenied` -> `HttpRequestDenied`."""
    name = type(value).__name__
    return name.split("_", 1)[1] if "_" in name else name


# Re-exported so callers can `isinstance(e.code, ...)` without importing
# the generated module themselves.
ErrorCode = http.ErrorCode
__all__ = ["request", "Response", "HttpError", "ErrorCode"]
