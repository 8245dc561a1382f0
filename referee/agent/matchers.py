"""What an expectation looks for: a method or status, and header / body matchers.

Shared by `Agent.expect` and the scenario runner, so a YAML step and a Python test say
"NOTIFY with Event refer and a 200 sipfrag" the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Callable

from referee.sip import Message, Request, Response, SipParseError
from referee.stack.subscription import sipfrag_status


class ExpectationFailed(AssertionError):
    """An expected message did not arrive, or arrived different from what was required.

    `evidence` holds the messages (or the absence) that show it; see referee.agent.evidence.
    """

    def __init__(self, message: str = "", evidence: list | None = None) -> None:
        super().__init__(message)
        self.evidence = list(evidence or [])


_METHOD_RE = re.compile(r"[A-Za-z][A-Za-z0-9.!%*_+`'~-]*")
_CLASS_RE = re.compile(r"[1-6][xX]{2}")
_COMPARISON_RE = re.compile(r"(>=|<=|>|<)\s*(\d{3})")
_STATUS_RE = re.compile(r"\d{3}")


def kind_matches(what: str | int, msg: Message) -> bool:
    """'INVITE' (a request method), '*' (any request), 202 / '202' (a status), '2xx', '>=300'."""
    text = str(what).strip()
    if text == "*":
        return isinstance(msg, Request)
    if isinstance(msg, Request):
        return text.upper() == msg.method
    if _METHOD_RE.fullmatch(text) and not _CLASS_RE.fullmatch(text) \
            and text.lower() not in ("final", "provisional"):
        return False    # a method name never matches a response
    return status_matches(text, msg.status)


def status_matches(spec: str | int, status: int | None) -> bool:
    """Status spec: 200, '200', '2xx', '1xx', '>=300', '>300', '<200', 'final', 'provisional'."""
    if status is None:
        return False
    try:
        low, high = _status_range(str(spec).strip().lower())
    except ValueError:
        raise ValueError(f"bad status spec {spec!r}: expected e.g. 200, '2xx', '>=300', 'final'") from None
    return low <= status <= high


@functools.lru_cache(maxsize=256)
def _status_range(text: str) -> tuple[int, int]:
    """The statuses a (stripped, lowercase) spec stands for, as an inclusive range."""
    if text == "final":
        return 200, 10 ** 9
    if text == "provisional":
        return -10 ** 9, 199
    if len(text) == 3 and text[0] in "123456" and text[1:] == "xx":
        first = int(text[0]) * 100
        return first, first + 99
    m = _COMPARISON_RE.fullmatch(text)
    if m:
        op, value = m.group(1), int(m.group(2))
        return {">=": (value, 10 ** 9), "<=": (-10 ** 9, value), ">": (value + 1, 10 ** 9),
                "<": (-10 ** 9, value - 1)}[op]
    if _STATUS_RE.fullmatch(text):
        return int(text), int(text)
    raise ValueError(text)


def is_valid_kind(what: str | int) -> bool:
    text = str(what).strip()
    if text == "*":
        return True
    if _METHOD_RE.fullmatch(text) and not _CLASS_RE.fullmatch(text.lower()) \
            and text.lower() not in ("final", "provisional"):
        return True
    try:
        status_matches(text, 200)
        return True
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class HeaderMatcher:
    """One header condition. op: equals | regex | contains | present | absent | count."""

    name: str
    op: str
    value: str | int | None = None

    OPS = ("equals", "regex", "contains", "present", "absent", "count")

    def check(self, msg: Message) -> str | None:
        """None when satisfied, else a description of what was seen instead."""
        problem = self.problem(msg)
        return None if problem is None else problem[2]

    def problem(self, msg: Message) -> tuple[str, str, str] | None:
        """None when satisfied, else (header, expected, what was seen instead)."""
        values = msg.header_all(self.name)
        seen = values[0] if values else None
        expected = self.describe()
        if self.op == "absent":
            return None if not values else (self.name, expected, f"{self.name} present: {seen!r}")
        if self.op == "present":
            return None if values else (self.name, expected, f"{self.name} absent")
        if self.op == "count":
            ok = len(values) == int(self.value)
            return None if ok else (self.name, expected, f"{self.name} appears {len(values)} times")
        if not values:
            return (self.name, expected, f"{self.name} absent")
        if self.op == "equals":
            ok = any(v == str(self.value) for v in values)
        elif self.op == "contains":
            ok = any(str(self.value).lower() in v.lower() for v in values)
        elif self.op == "regex":
            ok = any(re.search(str(self.value), v) for v in values)
        else:
            raise ValueError(f"unknown header matcher op {self.op!r}")
        return None if ok else (self.name, expected, f"{self.name}: {seen!r}")

    def describe(self) -> str:
        if self.op in ("present", "absent"):
            return f"{self.name} {self.op}"
        if self.op == "equals":
            return f"{self.name}={self.value}"
        return f"{self.name} {self.op} {self.value!r}"


def header_matchers(spec: dict[str, object] | None) -> list[HeaderMatcher]:
    """{'Event': 'refer'} → equals; {'Event': {'regex': '^refer'}}; {'Replaces': {'present': True}};
    {'Refer-Sub': None} → absent."""
    out: list[HeaderMatcher] = []
    for name, cond in (spec or {}).items():
        if cond is None:
            out.append(HeaderMatcher(name, "absent"))
        elif isinstance(cond, dict):
            for op, value in cond.items():
                if op not in HeaderMatcher.OPS:
                    raise ValueError(f"unknown matcher {op!r} for header {name} (expected one of "
                                     f"{', '.join(HeaderMatcher.OPS)})")
                if op in ("present", "absent"):
                    op = op if value in (True, None) else ("absent" if op == "present" else "present")
                    out.append(HeaderMatcher(name, op))
                else:
                    out.append(HeaderMatcher(name, op, value))
        else:
            out.append(HeaderMatcher(name, "equals", str(cond)))
    return out


@dataclasses.dataclass
class Expectation:
    """Everything a received message must satisfy to be "the one" a step waits for."""

    what: str | int
    headers: list[HeaderMatcher] = dataclasses.field(default_factory=list)
    sipfrag: str | int | None = None          # status spec the message/sipfrag body must match
    state: str | None = None                  # Subscription-State value (active/terminated/...)
    where: Callable[[Message], bool] | None = None

    def mismatch(self, msg: Message) -> str | None:
        """None if `msg` satisfies the expectation, else why not (for error messages)."""
        if not kind_matches(self.what, msg):
            return "different method/status"
        problems = self.problems(msg)
        return "; ".join(seen for _, _, seen in problems) if problems else None

    def problems(self, msg: Message) -> list[tuple[str, str, str]]:
        """What keeps a message of the right kind from meeting the expectation: (part, expected, seen)."""
        problems = [p for p in (m.problem(msg) for m in self.headers) if p]
        if self.sipfrag is not None:
            try:
                status = sipfrag_status(msg.body)
            except SipParseError as exc:
                status = None
                problems.append(("sipfrag", f"status {self.sipfrag}", f"sipfrag unparsable: {exc.reason}"))
            if status is not None and not status_matches(self.sipfrag, status):
                problems.append(("sipfrag", f"status {self.sipfrag}", f"sipfrag status {status}"))
        if self.state is not None:
            try:
                sub = msg.subscription_state
                if sub is None or sub.state != self.state.lower():
                    problems.append(("Subscription-State", self.state,
                                     f"Subscription-State {msg.header('Subscription-State')!r}"))
            except SipParseError as exc:
                problems.append(("Subscription-State", self.state, f"Subscription-State unparsable: {exc.reason}"))
        if self.where is not None and not self.where(msg):
            problems.append(("message", "the step's condition", "custom condition false"))
        return problems

    def describe(self) -> str:
        parts = [str(self.what)]
        parts += [m.describe() for m in self.headers]
        if self.sipfrag is not None:
            parts.append(f"sipfrag {self.sipfrag}")
        if self.state is not None:
            parts.append(f"Subscription-State {self.state}")
        return " with ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]
