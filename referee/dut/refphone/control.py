"""The reference phone's call-control HTTP API, served inside the phone process.

Desk phones take call-control requests over HTTP (an "action URL", a REST API); with
`--control-port N` the reference phone does too, so the suite's `http` and `command` drivers
(and a test playing the operator) can be proven against a real SIP stack:

    GET|POST /api/dial?uri=sip:bob@127.0.0.1:5070           -> 200 call=1
    GET|POST /api/answer[?call=1]       /api/reject?code=486[&call=1]
    GET|POST /api/hangup[?call=1]       /api/hold[?call=1]
    GET|POST /api/transfer?uri=sip:carol@...[&call=1]        (default: the latest confirmed call)
    GET|POST /api/attended-transfer?call=1&consult=2
    GET|POST /api/answer-mode?mode=manual    /api/refer-policy?policy=decline
    GET      /api/calls                 -> one line per call: <handle> <state> <remote URI>

Parameters come in the query string, or in a POST body (form-encoded or a JSON object).
Answers are text/plain: 200 with the console's `OK` fields (`call=1`), 409 with `ERR <reason>`
when the phone refuses, 400 for a bad request, 404 for an unknown action, 401 without valid
credentials when `--control-auth basic|digest` is set. Requests are served one at a time in
the phone's own loop (pjsua2 runs on one thread), each bounded by a socket timeout.
"""

from __future__ import annotations

import base64
import hmac
import http.server
import json
import secrets
import shlex
import socketserver
import urllib.parse

from referee.sip import digest

REALM = "refphone"
REQUEST_TIMEOUT = 2.0        # seconds a client may take to send its request


class ControlServer:
    """Serves the API on host:port (0: a free port; `port` is the real one)."""

    def __init__(self, console, host: str, port: int, auth: str = "none", username: str = "",
                 password: str = "") -> None:
        self.console = console
        self.auth, self.username, self.password = auth, username, password
        self.nonces: set[str] = set()
        server = socketserver.TCPServer((host, port), _Handler, bind_and_activate=False)
        server.allow_reuse_address = True
        server.server_bind()
        server.server_activate()
        server.timeout = 0
        server.control = self      # type: ignore[attr-defined]
        self.server = server
        self.port = server.server_address[1]

    def fileno(self) -> int:
        return self.server.fileno()

    def handle_one(self) -> None:
        """Serve the request waiting on the socket (call when select() says it is readable)."""
        self.server.handle_request()

    def close(self) -> None:
        self.server.server_close()

    # -- requests --------------------------------------------------------------------------------
    def command_line(self, action: str, params: dict[str, str]) -> str:
        """The console command for an API action. Raises ValueError (400) or LookupError (404)."""
        def need(name: str) -> str:
            value = params.get(name, "")
            if not value:
                raise ValueError(f"{action}: parameter {name!r} is missing")
            return value

        def opt(name: str) -> list[str]:
            return [params[name]] if params.get(name) else []

        words = {
            "dial": lambda: ["dial", need("uri")],
            "answer": lambda: ["answer", *opt("call")],
            "reject": lambda: ["reject", params.get("code") or "486", *opt("call")],
            "hangup": lambda: ["hangup", *opt("call")],
            "hold": lambda: ["hold", *opt("call")],
            "transfer": lambda: ["xfer", params.get("call") or self.latest_confirmed(), need("uri")],
            "attended-transfer": lambda: ["axfer", need("call"), need("consult")],
            "answer-mode": lambda: ["answer-mode", need("mode")],
            "refer-policy": lambda: ["refer-policy", need("policy")],
        }.get(action)
        if words is None:
            raise LookupError(f"unknown action {action!r} (known: dial, answer, reject, hangup, hold, transfer, "
                              f"attended-transfer, answer-mode, refer-policy, calls)")
        return " ".join(shlex.quote(w) for w in words())

    def latest_confirmed(self) -> str:
        confirmed = [h for h, state, _ in self.console.phone.list_calls() if state == "confirmed"]
        if not confirmed:
            raise ValueError("transfer: no confirmed call to transfer (give call=...)")
        return max(confirmed, key=int)

    def calls_text(self) -> str:
        return "".join(f"{h} {state} {remote}\n" for h, state, remote in self.console.phone.list_calls())

    def authorized(self, method: str, path: str, header: str | None, body: bytes) -> bool:
        if self.auth == "none":
            return True
        if not header:
            return False
        if self.auth == "basic":
            scheme, _, token = header.partition(" ")
            try:
                given = base64.b64decode(token.strip(), validate=True).decode()
            except ValueError:
                return False
            return scheme.lower() == "basic" and hmac.compare_digest(given, f"{self.username}:{self.password}")
        try:
            creds = digest.Credentials.parse(header)
        except ValueError:
            return False
        return (creds.username == self.username and creds.realm == REALM and creds.nonce in self.nonces
                and creds.uri == path and digest.verify(creds, method, self.password, body))

    def challenge(self) -> str:
        if self.auth == "basic":
            return f'Basic realm="{REALM}"'
        nonce = secrets.token_hex(16)
        self.nonces.add(nonce)
        return digest.make_challenge(REALM, nonce=nonce)


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = REQUEST_TIMEOUT
    server_version = "refphone-control"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    do_PUT = do_POST

    def log_message(self, format: str, *args) -> None:   # the protocol stream stays clean
        pass

    def _serve(self) -> None:
        control: ControlServer = self.server.control      # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if not control.authorized(self.command, self.path, self.headers.get("Authorization"), body):
            self._reply(401, "ERR authorization required\n", {"WWW-Authenticate": control.challenge()})
            return
        parts = urllib.parse.urlsplit(self.path)
        if not parts.path.startswith("/api/"):
            self._reply(404, f"ERR no such resource {parts.path!r}: the API is under /api/\n")
            return
        action = parts.path[len("/api/"):]
        try:
            params = dict(urllib.parse.parse_qsl(parts.query))
            params.update(_body_params(body, self.headers.get("Content-Type", "")))
            if action == "calls":
                self._reply(200, control.calls_text())
                return
            line = control.command_line(action, params)
        except LookupError as exc:
            self._reply(404, f"ERR {exc}\n")
            return
        except ValueError as exc:
            self._reply(400, f"ERR {exc}\n")
            return
        reply = control.console.handle(line)
        if reply.startswith("OK"):
            self._reply(200, reply[2:].strip() + "\n")
        else:
            self._reply(409, reply + "\n")

    def _reply(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _body_params(body: bytes, content_type: str) -> dict[str, str]:
    if not body:
        return {}
    text = body.decode("utf-8", "replace")
    if "json" in content_type.lower():
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("the JSON body must be an object of parameters")
        return {str(k): str(v) for k, v in data.items()}
    return dict(urllib.parse.parse_qsl(text))
