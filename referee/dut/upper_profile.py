"""Profile keys of the upper-tester drivers (`driver = "operator" | "http" | "command"`).

A device no console can drive (a desk phone) is made to act by a person, by its HTTP
call-control API or by a command; the suite then judges only what the device sends on the wire.
The profile says how each action is asked for:

    [actions]                   # optional for the operator
    timeout = 60                # seconds to wait for the SIP evidence of an action
    [actions.transfer]
    url = "http://127.0.0.1:8080/api/transfer?to={target}"     # driver = "http"
    run = ["phonectl", "transfer", "{target}"]                  # driver = "command"
    say = "press Transfer, dial {extension}, press Transfer"    # driver = "operator"
    [http]                      # driver = "http": shared request settings (auth, timeout, headers)
    [command]                   # driver = "command": shared command settings (timeout)

Errors name the file, the key and the fix, like every profile error.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
import urllib.parse

UPPER_DRIVERS = ("operator", "http", "command")

#: what a DUT can be asked to do (the actions of a scenario's `dut:` step)
ACTIONS = ("dial", "answer", "reject", "hangup", "hold", "transfer", "attended_transfer",
           "answer_mode", "refer_policy")

#: `{name}` placeholders the templates may use
PLACEHOLDERS = {
    "target": "the URI to call or transfer to, e.g. sip:target@127.0.0.1:40000",
    "extension": "the user part of that URI, e.g. target (or 1003)",
    "call": "the call handle (from the dial action's `handle`, else 1, 2, ...)",
    "consult_call": "attended transfer: the handle of the consultation call",
    "code": "reject: the status code asked for, e.g. 486",
    "mode": "answer_mode: auto, manual, busy, decline or noanswer",
    "policy": "refer_policy: accept or decline",
    "host": "the DUT's address (the profile's `address` host)",
    "port": "the DUT's SIP port",
    "user": "the user part the suite uses for the DUT",
    "username": "[http] / [command] username",
    "password": "[http] / [command] password (never written to reports)",
    "python": "command: the Python running referee",
    "repo": "command: the referee checkout",
}

DEFAULT_TIMEOUT = {"operator": 60.0, "http": 15.0, "command": 15.0}
ACTION_KEYS = {
    "operator": {"timeout", "say"},
    "http": {"timeout", "url", "method", "body", "headers", "handle"},
    "command": {"timeout", "run", "handle"},
}
HTTP_KEYS = {"auth", "username", "password", "timeout", "headers"}
COMMAND_KEYS = {"timeout", "username", "password"}
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
AUTH_SCHEMES = ("none", "basic", "digest")
#: capability -> actions a driven DUT needs for it
CAPABILITY_ACTIONS = {"transferor": ("dial", "transfer"), "attended": ("dial", "attended_transfer"),
                      "decline_refer": ("refer_policy",)}

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# names of query parameters, headers, body fields and options that carry a credential
_SECRET_NAME = re.compile(r"(?i)pass(word|wd)?$|pwd|secret|token|api[-_]?key|^auth|authorization|cookie|credential")


@dataclasses.dataclass(frozen=True)
class Action:
    """How one action is asked for."""

    name: str
    timeout: float                  # seconds to wait for its SIP evidence
    say: str = ""                   # the operator's instruction (default: referee's wording)
    method: str = "GET"             # http
    url: str = ""                   # http
    body: str = ""                  # http
    headers: tuple[tuple[str, str], ...] = ()   # http
    run: tuple[str, ...] = ()       # command
    handle: str = ""                # regular expression: group 1 of the answer is the call handle


@dataclasses.dataclass(frozen=True)
class HttpSettings:
    auth: str = "none"
    username: str = ""
    password: str = ""
    timeout: float = 5.0            # seconds per request
    headers: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class CommandSettings:
    timeout: float = 10.0           # seconds a command may run
    username: str = ""
    password: str = ""


@dataclasses.dataclass
class UpperTester:
    """An upper-tester driver's part of the profile."""

    driver: str
    timeout: float                  # default seconds to wait for an action's evidence
    actions: dict[str, Action]
    http: HttpSettings | None = None
    command: CommandSettings | None = None

    def __repr__(self) -> str:   # never show a password
        return f"UpperTester({self.driver!r}, actions={sorted(self.actions)})"

    def action_timeout(self, action: str) -> float:
        spec = self.actions.get(action)
        return spec.timeout if spec is not None else self.timeout

    @property
    def secrets(self) -> list[str]:
        """Every credential written in these keys: passwords, and credentials embedded in URLs,
        headers, bodies and command lines."""
        found: list[str] = []
        for settings in (self.http, self.command):
            if settings is not None and settings.password:
                found.append(settings.password)
        for spec in self.actions.values():
            found += _url_secrets(spec.url)
            found += _header_secrets(spec.headers)
            found += _body_secrets(spec.body)
            found += _command_secrets(spec.run)
        if self.http is not None:
            found += _header_secrets(self.http.headers)
        out: list[str] = []
        for secret in found:
            if secret and not _PLACEHOLDER.fullmatch(secret) and secret not in out:
                out.append(secret)
        return out


def _url_secrets(url: str) -> list[str]:
    if not url:
        return []
    parts = urllib.parse.urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [v for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=False) if _SECRET_NAME.search(k)]
    return found


def _header_secrets(headers) -> list[str]:
    found = []
    for name, value in headers:
        if _SECRET_NAME.search(name):
            found.append(value)
            scheme, _, credential = value.partition(" ")
            if credential.strip():
                found.append(credential.strip())
    return found


def _body_secrets(body: str) -> list[str]:
    if not body:
        return []
    found = re.findall(r'"([\w-]+)"\s*:\s*"([^"]*)"', body)           # JSON "name": "value"
    found += urllib.parse.parse_qsl(body, keep_blank_values=False) if "=" in body and "{" not in body[:1] else []
    return [v for k, v in found if _SECRET_NAME.search(k)]


def _command_secrets(argv) -> list[str]:
    found = []
    for i, arg in enumerate(argv):
        if arg.startswith("-"):
            name, eq, value = arg.lstrip("-").partition("=")
            if eq and _SECRET_NAME.search(name):
                found.append(value)
            elif not eq and i + 1 < len(argv) and (_SECRET_NAME.search(name) or name in ("u", "user")):
                value = argv[i + 1]
                found.append(value.partition(":")[2] if name in ("u", "user") else value)
    return found


# -- parsing --------------------------------------------------------------------------------------
def parse_upper(path, data: dict, driver: str | None, capabilities, error) -> UpperTester | None:
    """The upper-tester keys of a profile (`[actions]`, `[http]`, `[command]`), validated.
    `error(key, message, fix)` builds the profile's ProfileError."""
    for key, owner in (("actions", None), ("http", "http"), ("command", "command")):
        if key in data and (driver not in UPPER_DRIVERS or (owner and driver != owner)):
            wanted = f'driver = "{owner}"' if owner else 'driver = "operator", "http" or "command"'
            raise error(key, f"only used with {wanted} (this profile has driver = {driver!r})",
                        f"remove [{key}], or set {wanted}")
    if driver not in UPPER_DRIVERS:
        return None
    if "launch" in data:
        raise error("launch", f'driver = "{driver}" drives a device that runs by itself; the suite '
                              f"does not launch it", "remove `launch` and give the device's `address`")
    if "address" not in data:
        raise error("address", f'missing: driver = "{driver}" drives a device that runs by itself at '
                               f"its own address", 'address = "127.0.0.1:5060"')
    http = _http(data.get("http", {}), error) if driver == "http" else None
    command = _command(data.get("command", {}), error) if driver == "command" else None
    node = data.get("actions", {})
    if not isinstance(node, dict):
        raise error("actions", "must be a table of actions", "[actions.dial] ...")
    timeout = _seconds(node, "timeout", DEFAULT_TIMEOUT[driver], "actions.timeout", error)
    actions: dict[str, Action] = {}
    for name, spec in node.items():
        if name == "timeout":
            continue
        if name not in ACTIONS:
            raise error(f"actions.{name}", "unknown action", _suggest(name, ACTIONS))
        actions[name] = _action(driver, name, spec, timeout, error)
    if driver != "operator":
        if not actions:
            raise error("actions", f'driver = "{driver}" needs at least one action ({", ".join(ACTIONS)})',
                        _example(driver, "dial"))
        for capability, needed in CAPABILITY_ACTIONS.items():
            for action in needed:
                if capability in capabilities and action not in actions:
                    raise error("capabilities", f"'{capability}' needs the action {action!r}, and "
                                                f"[actions.{action}] is missing",
                                f"add {_example(driver, action)}, or remove '{capability}'")
    settings = http or command
    for spec in actions.values():
        for text in _templates(spec):
            if "{password}" in text and not (settings and settings.password):
                raise error(f"actions.{spec.name}", "uses {password} but no password is set",
                            f'[{driver}] password = "..."')
            if "{username}" in text and not (settings and settings.username):
                raise error(f"actions.{spec.name}", "uses {username} but no username is set",
                            f'[{driver}] username = "..."')
    return UpperTester(driver, timeout, actions, http, command)


def _example(driver: str, action: str) -> str:
    if driver == "http":
        return f'[actions.{action}] url = "http://127.0.0.1:8080/api/{action}?to={{target}}"'
    return f'[actions.{action}] run = ["phonectl", "{action}", "{{target}}"]'


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(choices)}"


def _seconds(node: dict, key: str, default: float, where: str, error) -> float:
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 600:
        raise error(where, f"must be a number of seconds (0..600], got {value!r}", f"{key} = {default:g}")
    return float(value)


def _string(node: dict, key: str, where: str, error, default: str = "") -> str:
    value = node.get(key, default)
    if not isinstance(value, str):
        raise error(where, f"must be a string, got {type(value).__name__}", f'{key} = "..."')
    return value


def _headers(node, where: str, error) -> tuple[tuple[str, str], ...]:
    if not isinstance(node, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in node.items()):
        raise error(where, "must be a table of header name = \"value\"", 'headers = { Accept = "text/plain" }')
    for name in node:
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise error(where, f"{name!r} is not a header name", 'headers = { Accept = "text/plain" }')
    return tuple(node.items())


def _unknown(node: dict, allowed: set[str], where: str, error) -> None:
    for key in node:
        if key not in allowed:
            raise error(f"{where}.{key}", "unknown key", _suggest(key, sorted(allowed)))


def _http(node, error) -> HttpSettings:
    if not isinstance(node, dict):
        raise error("http", "must be a table", '[http] auth = "digest"')
    _unknown(node, HTTP_KEYS, "http", error)
    username = _string(node, "username", "http.username", error)
    password = _string(node, "password", "http.password", error)
    auth = _string(node, "auth", "http.auth", error, "basic" if username else "none")
    if auth not in AUTH_SCHEMES:
        raise error("http.auth", f"{auth!r} is not one of {', '.join(AUTH_SCHEMES)}", _suggest(auth, AUTH_SCHEMES))
    if auth != "none" and not (username and password):
        raise error("http.auth", f"auth = \"{auth}\" needs a username and a password",
                    '[http] username = "admin"  password = "..."')
    return HttpSettings(auth, username, password, _seconds(node, "timeout", 5.0, "http.timeout", error),
                        _headers(node.get("headers", {}), "http.headers", error))


def _command(node, error) -> CommandSettings:
    if not isinstance(node, dict):
        raise error("command", "must be a table", "[command] timeout = 10")
    _unknown(node, COMMAND_KEYS, "command", error)
    return CommandSettings(_seconds(node, "timeout", 10.0, "command.timeout", error),
                           _string(node, "username", "command.username", error),
                           _string(node, "password", "command.password", error))


def _action(driver: str, name: str, spec, default_timeout: float, error) -> Action:
    where = f"actions.{name}"
    if not isinstance(spec, dict):
        raise error(where, "must be a table", _example(driver, name) if driver != "operator"
                    else f'[actions.{name}] say = "..."')
    _unknown(spec, ACTION_KEYS[driver], where, error)
    timeout = _seconds(spec, "timeout", default_timeout, f"{where}.timeout", error)
    say = _string(spec, "say", f"{where}.say", error)
    handle = _string(spec, "handle", f"{where}.handle", error)
    if handle:
        try:
            groups = re.compile(handle).groups
        except re.error as exc:
            raise error(f"{where}.handle", f"not a regular expression: {exc}", 'handle = "call=(\\\\S+)"') from None
        if groups < 1:
            raise error(f"{where}.handle", "needs a group: the call handle is what group 1 matches",
                        'handle = "call=(\\\\S+)"')
    action = Action(name, timeout, say=say, handle=handle)
    if driver == "http":
        action = dataclasses.replace(action, **_http_request(spec, where, error))
    elif driver == "command":
        run = spec.get("run")
        if not isinstance(run, list) or not run or not all(isinstance(a, str) and a for a in run):
            raise error(f"{where}.run", "missing, or not a non-empty list of command arguments",
                        f'run = ["phonectl", "{name}", "{{target}}"]')
        if "{" in run[0] and run[0] != "{python}":
            raise error(f"{where}.run", f"the program {run[0]!r} must be a name, a path or {{python}}",
                        f'run = ["phonectl", "{name}"]')
        action = dataclasses.replace(action, run=tuple(run))
    for text in _templates(action):
        for placeholder in _PLACEHOLDER.findall(text):
            if placeholder not in PLACEHOLDERS or (placeholder in ("python", "repo") and driver != "command"):
                known = [p for p in PLACEHOLDERS if driver == "command" or p not in ("python", "repo")]
                raise error(where, f"unknown placeholder {{{placeholder}}}",
                            "use one of " + ", ".join(f"{{{p}}}" for p in known))
    return action


def _http_request(spec: dict, where: str, error) -> dict:
    url = spec.get("url")
    if not isinstance(url, str) or not url:
        raise error(f"{where}.url", "missing: the URL the action is requested at",
                    'url = "http://127.0.0.1:8080/api/dial?to={target}"')
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise error(f"{where}.url", "must be an http:// or https:// URL",
                    'url = "http://127.0.0.1:8080/api/dial?to={target}"')
    if "@" in parts.netloc:
        # the URL itself is not quoted here: it holds a credential
        raise error(f"{where}.url", "carries credentials (user:password@host): the suite never writes "
                                    "them where reports could show them", '[http] username = "..."  password = "..."')
    host = parts.hostname or ""
    if host != "{host}":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise error(f"{where}.url", f"host {host!r} must be an IP address literal or {{host}} (the "
                                        f"suite never resolves names)", 'url = "http://{host}/api/..."') from None
    method = _string(spec, "method", f"{where}.method", error, "GET").upper()
    if method not in HTTP_METHODS:
        raise error(f"{where}.method", f"{method!r} is not one of {', '.join(HTTP_METHODS)}", 'method = "POST"')
    return {"url": url, "method": method, "body": _string(spec, "body", f"{where}.body", error),
            "headers": _headers(spec.get("headers", {}), f"{where}.headers", error)}


def _templates(action: Action) -> list[str]:
    return [action.url, action.body, action.say, *(v for _, v in action.headers), *action.run]


# -- filling in ---------------------------------------------------------------------------------
def expand(template: str, values: dict[str, str], quote=None) -> str:
    """`template` with each {name} replaced by values[name] (passed through `quote` if given)."""
    def one(m: re.Match) -> str:
        value = values.get(m.group(1), "")
        return quote(value) if quote else value
    return _PLACEHOLDER.sub(one, template)


def extension_of(uri: str) -> str:
    """The user part of a SIP URI ('' when it has none): sip:1003@pbx -> 1003."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    user, at, _ = rest.partition("@")
    return urllib.parse.unquote(user.split(";", 1)[0]) if at else ""
