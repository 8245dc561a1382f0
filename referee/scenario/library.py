"""Named steps a scenario calls with parameters: checks (judge what was seen) and actions (do
something the built-in step kinds cannot say in one line).

    - check: notify_event_refer
      args: {notifies: notifies, which: each}

A library step is a Python function registered here with its name, a one-paragraph description
and its parameters (name, type, description, default). The scenario loader validates calls
against that declaration (unknown step, unknown or missing argument, a saved name or call that
does not exist), `referee schema` publishes it, and `referee steps` lists it for authors.

The steps themselves live in referee/checks/ (imported on first use), grouped by topic.

A step function is `async def fn(ctx, **args)`; `ctx` is a StepContext: the Flow, the step's
trace record, and helpers to reach saved messages and calls and to raise a violation carrying
its evidence. A check raises `ctx.violation(...)` (FAIL in the body) when the DUT broke the
requirement; anything it cannot judge raises `Inconclusive`.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any, Callable

# parameter types: what the loader checks a value against
# party/call/saved/saved_list name something that exists before the step; new_call/new_saved/
# new_list name what the step creates (later steps may use it)
PARAM_TYPES = ("string", "number", "integer", "boolean", "status", "party", "call", "saved", "saved_list",
               "new_call", "new_saved", "new_list", "strings", "mapping")
NAME_PATTERN = "^[a-z][a-z0-9_]*$"


@dataclasses.dataclass(frozen=True)
class Param:
    type: str                         # one of PARAM_TYPES
    doc: str
    required: bool = False
    default: Any = None
    choices: tuple = ()

    def json_schema(self) -> dict:
        base = {
            "string": {"type": "string"}, "number": {"type": "number"}, "integer": {"type": "integer"},
            "boolean": {"type": "boolean"}, "status": {"type": ["string", "integer"]},
            "party": {"type": "string"}, "call": {"type": "string"}, "saved": {"type": "string"},
            "saved_list": {"type": "string"}, "new_call": {"type": "string", "pattern": NAME_PATTERN},
            "new_saved": {"type": "string", "pattern": NAME_PATTERN},
            "new_list": {"type": "string", "pattern": NAME_PATTERN},
            "strings": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "mapping": {"type": "object"},
        }[self.type]
        schema = dict(base, description=self.doc)
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.default is not None:
            schema["default"] = self.default
        return schema


@dataclasses.dataclass(frozen=True)
class LibraryStep:
    name: str
    kind: str                         # 'check' | 'do'
    doc: str
    params: dict[str, Param]
    fn: Callable
    module: str = ""

    def describe(self, args: dict) -> str:
        """The step's line in a trace: its name and arguments."""
        shown = ", ".join(f"{k}={v}" for k, v in args.items())
        return f"{self.kind} {self.name}" + (f" ({shown})" if shown else "")

    def args_schema(self) -> dict:
        return {"type": "object", "additionalProperties": False,
                "properties": {n: p.json_schema() for n, p in self.params.items()},
                "required": [n for n, p in self.params.items() if p.required]}


REGISTRY: dict[str, LibraryStep] = {}
LOAD_ERRORS: list[str] = []       # modules of the library that could not be imported
_LOADED = False


def _register(kind: str, name: str, doc: str, params: dict[str, Param]):
    def decorate(fn):
        if name in REGISTRY:
            raise ValueError(f"library step {name!r} is defined twice ({REGISTRY[name].module}, {fn.__module__})")
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"library step {name!r} must be an async function")
        REGISTRY[name] = LibraryStep(name, kind, inspect.cleandoc(doc), dict(params), fn, fn.__module__)
        return fn
    return decorate


def check(name: str, doc: str, **params: Param):
    """Register a check: it judges what the DUT sent (raises a violation when it broke the rule)."""
    return _register("check", name, doc, params)


def action(name: str, doc: str, **params: Param):
    """Register an action: it makes a party do something (no judgement of its own)."""
    return _register("do", name, doc, params)


def library() -> dict[str, LibraryStep]:
    """Every registered step (the built-in ones of referee/checks/ are imported on first use)."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        importlib.import_module("referee.checks")
    return REGISTRY


def lookup(name: str) -> LibraryStep | None:
    return library().get(name)
