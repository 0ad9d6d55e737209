#!/usr/bin/env python3
"""End-to-end test of the built component against a real Plugboard host.

    python3 tests/e2e.py [--plugboard PATH] [--wasm dist/tasks.wasm]

Starts a fake Tasks API on 127.0.0.1, a Plugboard host that may reach it
(--egress-allow-cidr 127.0.0.1/32) and a second host that may not, uploads
the component to both and checks every behaviour of
docs/authoring/tasks-example.md that goes through the HTTP API. Standard
library only; all traffic stays on loopback. Exits non-zero on the first
failed check.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
API_TOKEN = "tok_e2e_123"
WEBHOOK_SECRET = "whsec_e2e_456"


# --------------------------------------------------------------------------
# Fake Tasks API


class FakeTasks(BaseHTTPRequestHandler):
    """Answers by path; records every request it receives."""

    requests = []  # (method, raw path, headers dict, body bytes)
    lock = threading.Lock()

    def log_message(self, *args):  # keep the test output readable
        pass

    def _answer(self, status, body=None, headers=None):
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None and not isinstance(body, bytes):
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        return body

    def do_GET(self):
        self._record()
        if self.headers.get("authorization") != f"Bearer {API_TOKEN}":
            return self._answer(401, {"error": "missing or wrong token"})
        path = self.path
        if path == "/api/me":
            return self._answer(200, {"name": "Ada"})
        fixed = {
            "/api/tasks/42": (200, {"id": "42", "title": "Write docs", "done": False, "extra": [1, 2]}),
            "/api/tasks/a%20b%2Fc%3F": (200, {"id": "a b/c?", "title": "Odd id", "done": True}),
            "/api/tasks/missing": (404, {"error": "no such task"}),
            "/api/tasks/revoked": (401, {"error": "token revoked"}),
            "/api/tasks/boom": (500, b"internal"),
            "/api/tasks/teapot": (418, {"error": "I'm a teapot"}),
            "/api/tasks/weird": (200, {"id": 7, "title": "x", "done": False}),
            "/api/tasks/busy": (429, {"error": "slow down"}),
        }
        if path in fixed:
            status, body = fixed[path]
            headers = {"retry-after": "120"} if status == 429 else None
            return self._answer(status, body, headers)
        return self._answer(404, b"")

    def do_POST(self):
        body = self._record()
        if self.path != "/api/tasks":
            return self._answer(404, b"")
        try:
            title = json.loads(body)["title"]
        except (ValueError, KeyError, TypeError):
            return self._answer(400, {"error": "bad body"})
        if title == "reserved":
            return self._answer(422, {"error": "title is reserved"})
        return self._answer(201, {"id": "43", "title": title, "done": False, "owner": "ada"})


# --------------------------------------------------------------------------
# Plugboard host


class Host:
    def __init__(self, binary, allow_loopback):
        self.dir = tempfile.mkdtemp(prefix="pb-c-e2e-")
        args = [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.dir + "/data"]
        if allow_loopback:
            args += ["--egress-allow-cidr", "127.0.0.1/32"]
        self.log = open(self.dir + "/host.log", "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.base = None
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.base = m.group(1)
                break
        if self.base is None:
            self.stop()
            raise SystemExit(f"plugboard did not start; log in {self.dir}/host.log")
        with open(self.dir + "/data/admin.token") as f:
            self.token = f.read().strip()

    def call(self, method, path, body=None, headers=None, raw=None, token=True):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            req.add_header("authorization", f"Bearer {self.token}")
        if body is not None:
            req.add_header("content-type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null"), dict(resp.headers)
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text.decode(errors="replace")
            return e.code, parsed, dict(e.headers)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


# --------------------------------------------------------------------------
# Checks

failures = 0


def check(name, cond, detail=""):
    global failures
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f"\n       {detail}"))
    if not cond:
        failures += 1


def expect_error(name, got, status, code, message=None):
    s, body, _ = got
    ok = s == status and isinstance(body, dict) and body.get("error", {}).get("code") == code
    if ok and message is not None:
        ok = message in body["error"].get("message", "")
    check(name, ok, f"want {status} {code} {message!r}, got {s} {json.dumps(body)[:400]}")
    return body


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugboard", default=os.environ.get("PLUGBOARD") or shutil.which("plugboard"),
                    help="the plugboard binary (default: $PLUGBOARD, else plugboard on PATH)")
    ap.add_argument("--wasm", default=os.path.join(HERE, "..", "dist", "tasks.wasm"))
    args = ap.parse_args()
    if not args.plugboard:
        ap.error("no plugboard binary: put it on PATH, set PLUGBOARD or pass --plugboard")
    wasm = open(args.wasm, "rb").read()

    fake = ThreadingHTTPServer(("127.0.0.1", 0), FakeTasks)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    api_base = f"http://127.0.0.1:{fake.server_address[1]}/api/"  # trailing / is stripped

    host = Host(args.plugboard, allow_loopback=True)
    denied_host = Host(args.plugboard, allow_loopback=False)
    try:
        # Upload.
        t0 = time.monotonic()
        s, conn, _ = host.call("POST", "/v1/connectors", raw=wasm, headers={"content-type": "application/wasm"})
        upload_ms = (time.monotonic() - t0) * 1000
        check(f"upload ({len(wasm)} bytes, {upload_ms:.0f} ms)", s in (200, 201), f"{s} {conn}")
        m = conn.get("manifest", {})
        connector = conn.get("id", "")  # name@version; `plugboard new` renames the example
        check(
            "manifest",
            connector.endswith("@0.1.0")
            and [x["name"] for x in m.get("methods", [])] == ["echo", "get_task", "create_task"]
            and m.get("hosts") == ["{api_base}"]
            and m.get("webhook") is not None,
            json.dumps(m)[:600],
        )

        s, inst, _ = host.call(
            "POST",
            "/v1/instances",
            {
                "connector": connector,
                "name": "c-e2e",
                "config": {"api_base": api_base},
                "credentials": {"api_token": API_TOKEN, "webhook_secret": WEBHOOK_SECRET},
            },
        )
        check("create instance", s == 201, f"{s} {inst}")
        iid = inst["id"]

        def invoke(method, params, h=host, instance=iid):
            return h.call("POST", f"/v1/instances/{instance}/methods/{method}", {"parameters": params})

        # echo
        s, body, _ = invoke("echo", {"message": "héllo \"C\""})
        check("echo", s == 200 and body.get("data") == {"message": "héllo \"C\""}, f"{s} {body}")
        expect_error("echo empty message", invoke("echo", {"message": ""}), 400, "INVALID_PARAMS", "message must not be empty")

        # test-connection
        s, body, _ = host.call("POST", f"/v1/instances/{iid}/test")
        check("test-connection", s == 200 and body.get("data", {}).get("message") == "connected as Ada", f"{s} {body}")

        # get_task
        s, body, _ = invoke("get_task", {"id": "42"})
        check(
            "get_task 200 (reduced to id/title/done)",
            s == 200 and body.get("data") == {"id": "42", "title": "Write docs", "done": False},
            f"{s} {body}",
        )
        req = [r for r in FakeTasks.requests if r[1] == "/api/tasks/42"][-1]
        check(
            "get_task request headers (bearer injected by host, accept)",
            req[2].get("authorization") == f"Bearer {API_TOKEN}" and req[2].get("accept") == "application/json",
            str(req[2]),
        )
        s, body, _ = invoke("get_task", {"id": "a b/c?"})
        check("get_task percent-encodes the id", s == 200 and body.get("data", {}).get("id") == "a b/c?", f"{s} {body}")
        expect_error("get_task 404", invoke("get_task", {"id": "missing"}), 404, "UPSTREAM_NOT_FOUND", "no such task")
        expect_error("get_task 401", invoke("get_task", {"id": "revoked"}), 401, "AUTH_REQUIRED", "token revoked")
        expect_error("get_task 500", invoke("get_task", {"id": "boom"}), 503, "TEMPORARY_ERROR", "HTTP 500")
        # upstream({418, …}); the host answers a connector's 4xx `upstream` as 422.
        b = expect_error("get_task 418", invoke("get_task", {"id": "teapot"}), 422, "UPSTREAM_REJECTED", "I'm a teapot")
        check("418 keeps the upstream status", b.get("error", {}).get("details", {}).get("upstreamStatus") == 418, json.dumps(b))
        b = expect_error("get_task 200 with a bad body", invoke("get_task", {"id": "weird"}), 502, "UPSTREAM_ERROR", "unexpected response body")
        expect_error("get_task without id (host schema)", invoke("get_task", {}), 400, "INVALID_PARAMS")
        before = len(FakeTasks.requests)
        for dots in (".", ".."):
            expect_error(f"get_task id {dots!r} is refused", invoke("get_task", {"id": dots}), 400, "INVALID_PARAMS", "must not be")
        check("dot ids sent nothing upstream", len(FakeTasks.requests) == before)

        # create_task
        s, body, _ = invoke("create_task", {"title": "Ship it"})
        check(
            "create_task 201",
            s == 200 and body.get("data") == {"id": "43", "title": "Ship it", "done": False},
            f"{s} {body}",
        )
        req = [r for r in FakeTasks.requests if r[0] == "POST"][-1]
        check(
            "create_task request (content-type, accept, body)",
            req[2].get("content-type") == "application/json"
            and req[2].get("accept") == "application/json"
            and json.loads(req[3]) == {"title": "Ship it"},
            f"{req[2]} {req[3]!r}",
        )
        expect_error("create_task 422", invoke("create_task", {"title": "reserved"}), 400, "INVALID_PARAMS", "title is reserved")

        # Webhooks
        event = {"type": "task.created", "id": "evt_1", "task": {"id": "42", "title": "Write docs", "done": False}}
        wh = f"/v1/webhooks/{iid}"
        s, body, _ = host.call(
            "POST", wh, raw=json.dumps(event).encode(), token=False,
            headers={"x-tasks-secret": WEBHOOK_SECRET, "x-tasks-delivery": "d1", "content-type": "application/json"},
        )
        ok = s == 200 and body.get("status") == "ACCEPTED" and len(body.get("events", [])) == 1
        check("webhook → one event", ok, f"{s} {body}")
        if ok:
            s, ev, _ = host.call("GET", f"/v1/events/{body['events'][0]}")
            check(
                "event kind/id/payload",
                s == 200 and ev.get("kind") == "task.created" and ev.get("sourceId") == "evt_1" and ev.get("payload") == event["task"],
                f"{s} {ev}",
            )
        s, body, _ = host.call(
            "POST", wh, raw=json.dumps(event).encode(), token=False,
            headers={"x-tasks-secret": "wrong", "x-tasks-delivery": "d2"},
        )
        check("webhook with a wrong secret is refused by the host", s == 401, f"{s} {body}")
        for i, (what, raw, msg) in enumerate(
            [
                ("not JSON", b"{nope", "not valid JSON"),
                ("not an object", b"[1,2]", "JSON object"),
                ("type missing", json.dumps({"id": "e", "task": {}}).encode(), "`type`"),
                ("task not an object", json.dumps({"type": "t", "id": "e", "task": 5}).encode(), "`task`"),
                ("nested 5000 deep", b'{"type":"t","id":"e","task":' + b"[" * 5000 + b"]" * 5000 + b"}", "not valid JSON"),
            ]
        ):
            got = host.call("POST", wh, raw=raw, token=False, headers={"x-tasks-secret": WEBHOOK_SECRET, "x-tasks-delivery": f"bad{i}"})
            expect_error(f"webhook body {what} → INVALID_PARAMS", got, 400, "INVALID_PARAMS", msg)
        # The host itself refuses payloads nested deeper than 128.
        deep = {"type": "t.deep", "id": "evt_deep", "task": {"a": json.loads("[" * 100 + "]" * 100)}}
        s, body, _ = host.call(
            "POST", wh, raw=json.dumps(deep).encode(), token=False,
            headers={"x-tasks-secret": WEBHOOK_SECRET, "x-tasks-delivery": "deep"},
        )
        check("webhook with a 100-deep task is accepted", s == 200 and body.get("status") == "ACCEPTED", f"{s} {body}")

        # 429 last: its Retry-After pauses the host's budget for this upstream.
        got = invoke("get_task", {"id": "busy"})
        b = expect_error("get_task 429", got, 429, "RATE_LIMIT_EXCEEDED", "slow down")
        check("429 carries retryAfterSecs 120", b.get("error", {}).get("details", {}).get("retryAfterSecs") == 120, json.dumps(b))

        # Denied host: loopback is not allowed there.
        s, _, _ = denied_host.call("POST", "/v1/connectors", raw=wasm, headers={"content-type": "application/wasm"})
        check("upload to the second host", s in (200, 201))
        s, inst2, _ = denied_host.call(
            "POST", "/v1/instances",
            {"connector": connector, "name": "denied", "config": {"api_base": api_base}, "credentials": {"api_token": API_TOKEN}},
        )
        check("create instance on the second host", s == 201, f"{s} {inst2}")
        before = len(FakeTasks.requests)
        b = expect_error("denied host → HOST_DENIED", invoke("get_task", {"id": "42"}, denied_host, inst2["id"]), 403, "HOST_DENIED")
        print(f"       denied answer: {json.dumps(b.get('error'))[:300]}")
        check("nothing reached the fake from the denied host", len(FakeTasks.requests) == before)
        s, body, _ = invoke("echo", {"message": "still alive"}, denied_host, inst2["id"])
        check("the instance still works after the denied call (no trap)", s == 200, f"{s} {body}")
        denied_host.stop()
        log = open(denied_host.dir + "/host.log").read()
        # A refused address surfaces in the guest as DestinationIpProhibited (a
        # host not in the manifest would be HttpRequestDenied); the connector
        # turns it into temporary("request failed: …") and the host, which knows
        # it denied the request, answers HOST_DENIED instead.
        check(
            "the connector saw the wasi:http error code (its warn log line)",
            re.search(r'request to the Tasks API failed .*error="(DestinationIpProhibited|HttpRequestDenied)"', log) is not None,
            "no such line in " + denied_host.dir + "/host.log",
        )

        # Denied by the instance's allowedHosts (not the IP policy): the guest
        # sees HttpRequestDenied.
        s, inst4, _ = host.call(
            "POST", "/v1/instances",
            {"connector": connector, "name": "narrowed", "config": {"api_base": api_base},
             "credentials": {"api_token": API_TOKEN}, "limits": {"allowedHosts": ["https://elsewhere.example.com"]}},
        )
        check("create instance with narrower allowedHosts", s == 201, f"{s} {inst4}")
        before = len(FakeTasks.requests)
        expect_error("host outside allowedHosts → HOST_DENIED", invoke("get_task", {"id": "42"}, host, inst4["id"]), 403, "HOST_DENIED")
        check("nothing reached the fake from the narrowed instance", len(FakeTasks.requests) == before)

        # Connection refused: an allowed address where nothing listens.
        s, inst3, _ = host.call(
            "POST", "/v1/instances",
            {"connector": connector, "name": "refused", "config": {"api_base": f"http://127.0.0.1:{closed_port()}/api"},
             "credentials": {"api_token": API_TOKEN}},
        )
        check("create instance pointing at a closed port", s == 201, f"{s} {inst3}")
        # The connector answers temporary("request failed: ConnectionRefused");
        # the host, which saw the connection fail, answers UPSTREAM_UNREACHABLE.
        expect_error(
            "connection refused → UPSTREAM_UNREACHABLE",
            invoke("create_task", {"title": "x"}, host, inst3["id"]), 502, "UPSTREAM_UNREACHABLE", "Connection refused",
        )
        host.stop()
        log = open(host.dir + "/host.log").read()
        check(
            "the connector saw ConnectionRefused (its warn log line)",
            re.search(r'request to the Tasks API failed .*error="ConnectionRefused"', log) is not None,
            "no such line in " + host.dir + "/host.log",
        )
        check(
            "the connector saw HttpRequestDenied (its warn log line)",
            re.search(r'request to the Tasks API failed .*error="HttpRequestDenied"', log) is not None,
            "no such line in " + host.dir + "/host.log",
        )
    finally:
        host.stop()
        denied_host.stop()
        fake.shutdown()
        if failures == 0:
            shutil.rmtree(host.dir, ignore_errors=True)
            shutil.rmtree(denied_host.dir, ignore_errors=True)
        else:
            print(f"host logs kept in {host.dir} and {denied_host.dir}")

    print(f"{'PASS' if failures == 0 else 'FAIL'}: {failures} failed check(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
