"""Load and validate scenario files. Every problem becomes one ScenarioError naming file:line.

    scenarios/x.yaml:14: step 3: unknown matcher 'hedaers' in expect step (did you mean 'headers'?)

Validation has two passes. The structure is checked against the JSON Schema of referee/
scenario/schema.py (the schema editors use): the top level, then each step against the
definition of its kind, then each library step's arguments against its declaration. Then the
meaning is checked: parties, calls and saved messages named before they are used, variables
that exist, step kinds that fit their phase.

A file is one test purpose, or a table of them (`cases:`): each case has its own id, title and
requirement, may override rfc/section/level, may give its own preamble/body/postamble, and fills
`{case.NAME}` placeholders from its `vars`.
"""

from __future__ import annotations

import copy
import difflib
import functools
import pathlib
import re

import jsonschema

from referee.agent.matchers import HeaderMatcher, is_valid_kind, status_matches

from .library import library
from .model import (AnyOrderStep, CallStep, CollectStep, DutStep, ExpectNoneStep, ExpectStep, LibraryCall,
                    NotifyStep, Party, ReplyStep, Requirement, Scenario, SendStep, SetStep, Step, WaitStep)
from .schema import scenario_schema, step_kinds
from .yamlsrc import LDict, LList, YamlError, line_of, load_yaml

PHASE_KEYS = ("preamble", "body", "postamble")
CASE_META = ("id", "title", "rfc", "section", "level", "requirement", "needs", "markers", "description")
DUT_ACTIONS = {"dial", "answer", "reject", "hangup", "hold", "unhold", "transfer", "attended_transfer", "event",
               "answer_mode", "refer_policy"}
VARIABLE_RE = re.compile(r"\{([A-Za-z_][\w-]*)\.([\w-]+)\}")
CASE_VAR_RE = re.compile(r"\{case\.([A-Za-z_][\w-]*)\}")
PARTY_ATTRS = {"uri", "aor", "host", "port", "user", "hostport", "contact"}
CALL_ATTRS = {"replaces", "replaces_escaped", "call_id", "local_tag", "remote_tag", "remote_target", "target_dialog"}
PATTERN_HINTS = {
    "id": "is not a test purpose id like 'TE-BLIND-001'",
    "rfc": "must look like 'RFC 3515'",
}


class ScenarioError(ValueError):
    """A broken scenario file: `path:line: message`."""

    def __init__(self, path: pathlib.Path | str, line: int, message: str) -> None:
        self.path, self.line, self.message = str(path), line, message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


# -- entry points ---------------------------------------------------------------------------------

def load_scenarios(path: pathlib.Path | str, base: pathlib.Path | None = None) -> list[Scenario]:
    """Every test purpose of one file (one, or one per case)."""
    path = pathlib.Path(path)
    shown = _display(path, base)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(shown, 0, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(shown, 0, f"cannot read: {exc}") from None
    try:
        data = load_yaml(text)
    except YamlError as exc:
        raise ScenarioError(shown, exc.line, exc.message) from None
    return _FileValidator(path, shown).scenarios(data)


def load_scenario(path: pathlib.Path | str, base: pathlib.Path | None = None) -> Scenario:
    """The test purpose of a file that holds one (the first case of a table)."""
    return load_scenarios(path, base)[0]


def load_all(directory: pathlib.Path | str) -> tuple[list[Scenario], list[ScenarioError]]:
    """Every *.yaml under `directory` (not sipp/), sorted; broken files come back as errors."""
    directory = pathlib.Path(directory)
    scenarios, errors = [], []
    for path in sorted(directory.rglob("*.yaml")):
        if "sipp" in path.relative_to(directory).parts:
            continue
        try:
            scenarios += load_scenarios(path, directory.parent)
        except ScenarioError as exc:
            errors.append(exc)
    seen: dict[str, Scenario] = {}
    for sc in scenarios:
        if sc.id in seen:
            errors.append(ScenarioError(_display(sc.file, directory.parent), 1,
                                        f"duplicate test purpose id {sc.id!r} (also in {seen[sc.id].file.name})"))
        seen[sc.id] = sc
    return scenarios, errors


def _display(path: pathlib.Path, base: pathlib.Path | None) -> str:
    try:
        return str(path.resolve().relative_to((base or pathlib.Path.cwd()).resolve()))
    except ValueError:
        return str(path)


def _suggest(word, choices) -> str:
    close = difflib.get_close_matches(str(word), sorted(map(str, choices)), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (expected one of: {', '.join(sorted(map(str, choices)))})"


# -- structure: the JSON Schema ---------------------------------------------------------------------

def _shallow(schema: dict) -> dict:
    """The top-level schema with step lists checked only as lists (each step is checked on its
    own, against its kind, for a precise message)."""
    shallow = copy.deepcopy(schema)
    shallow["$defs"]["steps"] = {"type": "array"}
    return shallow


@functools.lru_cache(maxsize=2)
def _compiled(library_steps: tuple[str, ...]):
    """The schema and its validators, made once for a given step library (the files of a run
    share them)."""
    schema = scenario_schema()
    kinds = step_kinds()
    step_validators = {k: jsonschema.Draft202012Validator(v, resolver=None)
                       for k, v in kinds.items() if k != "any_order"}
    return schema, jsonschema.Draft202012Validator(_shallow(schema)), kinds, step_validators


class _Structure:
    """Messages from JSON Schema errors, with the line of the offending key or value."""

    def __init__(self, fail) -> None:
        self.fail = fail
        self.schema, self.top, self.kinds, self.step_validators = _compiled(tuple(sorted(library())))

    def check_top(self, data: LDict) -> None:
        errors = sorted(self.top.iter_errors(data), key=lambda e: (len(e.absolute_path), e.validator != "oneOf"))
        for error in errors:
            raise self._error(error, data, "top-level key", "")

    def check_step(self, node: LDict, kind: str, prefix: str) -> None:
        if kind == "any_order":
            return
        errors = sorted(self.step_validators[kind].iter_errors(node), key=lambda e: -len(e.absolute_path))
        for error in errors:
            raise self._error(error, node, "key", f" in {kind} step", prefix, kind)

    def check_args(self, node: LDict, entry, prefix: str) -> None:
        args = node.get("args", {}) or {}
        validator = jsonschema.Draft202012Validator(entry.args_schema())
        for error in sorted(validator.iter_errors(args), key=lambda e: -len(e.absolute_path)):
            where = line_of(node, "args") if "args" in node else node.line
            raise self._error(error, args, "argument", f" of {entry.kind} {entry.name}", prefix, entry.kind,
                              base_line=where)

    # one error -> one readable message
    def _error(self, error, root, what: str, where: str, prefix: str = "", kind: str = "", base_line: int = 0):
        head = f"{prefix}: " if prefix else ""
        if error.validator in ("oneOf", "anyOf") and error.context and error.absolute_path:
            # a value that fits none of the alternatives: report against the one of its own type
            fitting = [e for e in error.context if e.validator != "type" and e.validator != "const"]
            if fitting:
                best = max(fitting, key=lambda e: len(e.absolute_path))
                return self._error(best, root, what, where, prefix, kind, base_line)
        node, key = _locate(root, list(error.absolute_path))
        line = (line_of(node, key) if key is not None else line_of(node)) or base_line or line_of(root)
        name = key if key is not None else (error.absolute_path[-1] if error.absolute_path else "")
        v, value = error.validator, error.instance
        if v == "additionalProperties":
            allowed = set(error.schema.get("properties", {}))
            extra = [k for k in value if k not in allowed]
            bad = extra[0] if extra else "?"
            line = line_of(value, bad) or line
            if kind.startswith("expect") and what == "key" and bad not in self.kinds:
                what = "matcher"
            if allowed and allowed <= set(HeaderMatcher.OPS):      # {regex: ..., contains: ...} of a header
                return self.fail(line, f"{head}unknown matcher {bad!r} for header {name}{_suggest(bad, allowed)}")
            return self.fail(line, f"{head}unknown {what} {bad!r}{where}{_suggest(bad, allowed)}")
        if v == "required":
            missing = next((r for r in error.validator_value if r not in value), error.validator_value[0])
            return self.fail(line_of(value) or line, f"{head}missing required key {missing!r}")
        if v == "oneOf" and not error.absolute_path:
            # the top level: one test purpose (id, title, ... body) or a table of cases
            missing = next((r for r in ("id", "title", "rfc", "section", "level", "body") if r not in value), None)
            if missing and "cases" not in value:
                return self.fail(line_of(value), f"{head}missing required key {missing!r}")
            if "cases" in value:
                both = [k for k in ("id",) if k in value]
                return self.fail(line_of(value, "cases"), f"{head}a table of cases gives each case its own id; "
                                                          f"remove the top-level {both[0] if both else 'id'!r}")
        if v == "enum":
            choices = error.validator_value
            label = {"dut": "dut role"}.get(str(name), str(name))
            if name == "level":
                return self.fail(line, f"{head}level {value!r} must be one of {', '.join(choices)}")
            return self.fail(line, f"{head}{label} {value!r}{_suggest(value, choices)}")
        if v == "pattern":
            hint = PATTERN_HINTS.get(str(name))
            if hint:
                return self.fail(line, f"{head}{name} {value!r} {hint}")
            if error.validator_value == "^[a-z][a-z0-9_]*$":
                return self.fail(line, f"{head}{name} name {value!r} must be lowercase letters, digits, _")
            if str(name) == "send" or str(name) == "collect":
                return self.fail(line, f"{head}{name} needs a method in capitals, got {value!r}")
            return self.fail(line, f"{head}{name} {value!r} does not match {error.validator_value}")
        if v in ("minimum", "maximum") or (v == "type" and error.schema.get("maximum") == 600):
            return self.fail(line, f"{head}{name} must be a number of seconds (0..600), got {value!r}")
        if v == "type":
            wanted = error.validator_value
            wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
            article = "an" if wanted[:1] in "aeiou" else "a"
            return self.fail(line, f"{head}{name} must be {article} {wanted}, got {type(value).__name__}")
        if v == "minItems":
            return self.fail(line, f"{head}{name} must be a non-empty list")
        if v == "minProperties":
            return self.fail(line, f"{head}{name} must not be empty")
        return self.fail(line, f"{head}{name}: {error.message}")


def _locate(root, path: list):
    """The container holding the offending item and its key (None: the root itself)."""
    node, key = root, None
    for part in path:
        if key is not None:
            node = node[key]
        key = part
    if isinstance(node, LList) and isinstance(key, int):
        return (node[key] if isinstance(node[key], (LDict, LList)) else node), None
    return node, key


# -- one file ---------------------------------------------------------------------------------------

class _FileValidator:
    def __init__(self, path: pathlib.Path, shown: str) -> None:
        self.path = path
        self.shown = shown

    def fail(self, line: int, message: str) -> ScenarioError:
        return ScenarioError(self.shown, line, message)

    def scenarios(self, data) -> list[Scenario]:
        if not isinstance(data, LDict):
            raise self.fail(line_of(data, default=1), "a scenario file must be a mapping (id:, title:, body: ...)")
        if "steps" in data:
            raise self.fail(line_of(data, "steps"), "'steps' is split into 'preamble' (bring the parties to the "
                                                    "state under test), 'body' (the behaviour the requirement is "
                                                    "about) and 'postamble' (clean up): only the body can FAIL")
        structure = _Structure(self.fail)
        structure.check_top(data)
        if "cases" not in data:
            return [_Validator(self.path, self.shown, structure).scenario(data, data)]
        out = []
        for case in data["cases"]:
            merged = self.merge(data, case)
            out.append(_Validator(self.path, self.shown, structure).scenario(merged, case))
        return out

    def merge(self, top: LDict, case: LDict) -> LDict:
        """The case's own test purpose: the file's keys, the case's overrides, {case.X} filled in."""
        merged = LDict((k, v) for k, v in top.items() if k != "cases")
        merged.line, merged.key_lines = top.line, dict(top.key_lines)
        for key, value in case.items():
            if key in ("vars", "judge"):
                continue
            merged[key] = value
            merged.key_lines[key] = line_of(case, key)
        if "judge" in case:                    # this case's own judging steps, after the shared body
            body = LList(list(merged.get("body", [])) + list(case["judge"]))
            body.line = line_of(merged.get("body"), default=line_of(case, "judge"))
            merged["body"] = body
        for key in ("rfc", "section", "level", "body"):
            if key not in merged:
                raise self.fail(case.line, f"case {case.get('id', '?')}: missing {key!r} (give it in the case "
                                           f"or at the top of the file)")
        variables = dict(case.get("vars", {}) or {})
        return _substitute(merged, variables, self.fail, case)


def _substitute(node, variables: dict, fail, case: LDict):
    """A copy of `node` with every {case.NAME} replaced (a whole-value placeholder keeps the
    value's type: `timeout: "{case.wait}"` becomes a number)."""
    if isinstance(node, LDict):
        out = LDict((k, _substitute(v, variables, fail, case)) for k, v in node.items())
        out.line, out.key_lines = node.line, dict(node.key_lines)
        return out
    if isinstance(node, LList):
        out = LList(_substitute(v, variables, fail, case) for v in node)
        out.line = node.line
        return out
    if isinstance(node, str) and "{case." in node:
        whole = CASE_VAR_RE.fullmatch(node)
        for name in CASE_VAR_RE.findall(node):
            if name not in variables:
                raise fail(case.line, f"case {case.get('id', '?')}: no vars.{name} for {{case.{name}}}"
                                      f"{_suggest(name, variables) if variables else ''}")
        if whole:
            return variables[whole.group(1)]
        return CASE_VAR_RE.sub(lambda m: str(variables[m.group(1)]), node)
    return node


class _Validator:
    """One test purpose: builds the Scenario and checks what the schema cannot."""

    def __init__(self, path: pathlib.Path, shown: str, structure: _Structure) -> None:
        self.path = path
        self.shown = shown
        self.structure = structure
        self.parties: dict[str, Party] = {}
        self.calls: set[str] = set()
        self.saved: set[str] = set()
        self.lists: set[str] = set()
        self.phase = "body"

    def fail(self, line: int, message: str) -> ScenarioError:
        return ScenarioError(self.shown, line, message)

    def scenario(self, data: LDict, origin: LDict) -> Scenario:
        sid = str(data["id"])
        level = str(data["level"]).upper()
        rfc = str(data["rfc"])
        rfc = "RFC " + rfc[3:].strip()
        if origin is not data:                     # a case: check it as the test purpose it makes
            self.structure.check_top(data)
        for key, hint in PATTERN_HINTS.items():
            if key in data and not re.fullmatch(self.structure.schema["properties"][key]["pattern"], str(data[key])):
                raise self.fail(line_of(data, key), f"{key} {str(data[key])!r} {hint}")
        if level not in ("MUST", "SHOULD", "MAY"):
            raise self.fail(line_of(data, "level"), f"level {data['level']!r} must be one of MUST, SHOULD, MAY")
        role = str(data["dut"])
        topology = str(data.get("topology", "direct"))
        requirement = Requirement(rfc, str(data["section"]), level, str(data.get("requirement", "")).strip())
        self.parties = self.parse_parties(data["parties"])
        default_kinds = ["pbx"] if role == "pbx" else ["proxy"] if role == "proxy" else ["phone"]
        steps: list[Step] = []
        for phase in PHASE_KEYS:
            node = data.get(phase)
            if node is None:
                continue
            self.phase = phase
            for child in node:
                step = self.step(child, str(len(steps) + 1))
                step.phase = phase
                for sub in getattr(step, "steps", []):
                    sub.phase = phase
                steps.append(step)
        if not any(s.phase == "body" for s in steps):
            raise self.fail(line_of(data, "body"), "body must be a non-empty list")
        nat = data.get("nat", {}) or {}
        if nat and topology != "nat":
            raise self.fail(line_of(data, "nat"), "nat options need topology: nat")
        return Scenario(
            id=sid, title=str(data["title"]).strip(), file=self.path, requirement=requirement, dut_role=role,
            parties=self.parties, steps=steps, needs=list(data.get("needs", [])),
            dut_kinds=list(data.get("dut_kinds", [])) or default_kinds, topology=topology,
            markers=list(data.get("markers", [])), description=str(data.get("description", "")).strip(),
            nat_alg=tuple(nat.get("alg", ("off", "on"))), nat_proxy=bool(nat.get("proxy", False)))

    def parse_parties(self, node: LDict) -> dict[str, Party]:
        parties: dict[str, Party] = {}
        for name, spec in node.items():
            options = dict(spec) if isinstance(spec, dict) else {}
            kind = options.pop("kind", "agent") if isinstance(spec, dict) else spec
            parties[name] = Party(name, kind, options)
        if sum(p.kind == "dut" for p in parties.values()) > 1:
            raise self.fail(line_of(node), "only one party can be the dut")
        return parties

    # -- steps ---------------------------------------------------------------------------------
    def step(self, node, index: str, in_group: bool = False) -> Step:
        prefix = f"step {index}"
        if not isinstance(node, LDict):
            raise self.fail(line_of(node, default=0), f"{prefix}: a step must be a mapping like 'expect: NOTIFY'")
        kinds_known = self.structure.kinds
        kinds = [k for k in kinds_known if k in node]
        if len(kinds) > 1:
            # `expect:` inside a call step and `reply:` inside an expect step are keys, not kinds
            kinds = [k for k in kinds if not any(k in kinds_known[o]["properties"] for o in kinds if o != k)]
        if len(kinds) != 1:
            if not kinds:
                first = next(iter(node), "")
                raise self.fail(node.line, f"{prefix}: unknown step kind {first!r}{_suggest(first, kinds_known)}")
            raise self.fail(node.line, f"{prefix}: one step, one kind (found {', '.join(kinds)})")
        kind = kinds[0]
        if in_group and kind != "expect":
            raise self.fail(node.line, f"{prefix}: any_order groups hold only expect steps, not {kind}")
        self.structure.check_step(node, kind, prefix)
        common = dict(line=node.line, index=index, requirement=self.opt_str(node, "requirement", prefix),
                      note=self.opt_str(node, "note", prefix) or "")
        return getattr(self, f"step_{kind}")(node, prefix, common)

    def opt_str(self, node: LDict, key: str, prefix: str) -> str | None:
        if key not in node or node[key] is None:
            return None
        value = str(node[key])
        self.check_variables(value, line_of(node, key), prefix)
        return value

    def party(self, node: LDict, key: str, prefix: str, agent_only: bool = False, required: bool = True,
              value: str | None = None) -> str | None:
        if value is None and key not in node:
            if required:
                raise self.fail(node.line, f"{prefix}: missing {key!r} (one of: {', '.join(self.parties)})")
            return None
        name = value if value is not None else node[key]
        if name not in self.parties:
            raise self.fail(line_of(node, key), f"{prefix}: unknown party {name!r}{_suggest(name, self.parties)}")
        if agent_only and self.parties[name].kind == "dut":
            raise self.fail(line_of(node, key), f"{prefix}: {key}: {name} is the DUT; only the suite's agents "
                                                f"can {('observe messages' if key == 'at' else 'do that')} — "
                                                "use a 'dut:' step to drive the DUT")
        return name

    def call_ref(self, node: LDict, key: str, prefix: str, value: str | None = None) -> str | None:
        if value is None and key not in node:
            return None
        name = value if value is not None else node[key]
        if name not in self.calls:
            known = ", ".join(sorted(self.calls)) or "none yet"
            raise self.fail(line_of(node, key), f"{prefix}: call {name!r} is not defined before this step "
                                                f"(defined: {known})")
        return name

    def saved_ref(self, node: LDict, key: str, prefix: str, value: str | None = None,
                  pool: set[str] | None = None) -> str | None:
        if value is None and key not in node:
            return None
        name = value if value is not None else node[key]
        pool = self.saved if pool is None else pool
        if name not in pool:
            known = ", ".join(sorted(pool)) or "none yet"
            raise self.fail(line_of(node, key), f"{prefix}: {key}: {name!r} is not saved by an earlier step "
                                                f"(saved: {known})")
        return name

    def save_name(self, node: LDict, key: str, prefix: str) -> str | None:
        if key not in node:
            return None
        name = node[key]
        if name in self.parties:
            raise self.fail(line_of(node, key), f"{prefix}: {key} name {name!r} clashes with a party")
        return name

    def headers(self, node: LDict, key: str, prefix: str, matchers: bool) -> dict | list:
        value = node.get(key, {}) or {}
        if isinstance(value, list):            # header fields in order (a name may repeat)
            for item in value:
                for name, text in item.items():
                    if text is not None:
                        self.check_variables(str(text), line_of(item, name, line_of(node, key)), prefix)
            return [(name, text) for item in value for name, text in item.items()]
        for name, cond in value.items():
            hline = line_of(value, name, line_of(node, key))
            if matchers and isinstance(cond, dict):
                for op, arg in cond.items():
                    if op == "regex":
                        try:
                            re.compile(str(arg))
                        except re.error as exc:
                            raise self.fail(line_of(cond, op, hline), f"{prefix}: bad regex for {name}: {exc}") from None
                    if isinstance(arg, str):
                        self.check_variables(arg, hline, prefix)
            elif cond is not None:
                self.check_variables(str(cond), hline, prefix)
        return dict(value)

    def status_spec(self, value, line: int, prefix: str, what: str = "status") -> str:
        try:
            status_matches(str(value), 200)
        except ValueError:
            raise self.fail(line, f"{prefix}: bad {what} {value!r}: expected e.g. 200, '1xx', '>=300', 'final'") from None
        return str(value)

    def check_variables(self, text: str, line: int, prefix: str) -> None:
        for root, attr in VARIABLE_RE.findall(text):
            if root in self.parties:
                if attr not in PARTY_ATTRS:
                    raise self.fail(line, f"{prefix}: unknown attribute {{{root}.{attr}}}{_suggest(attr, PARTY_ATTRS)}")
            elif root in self.calls:
                if attr not in CALL_ATTRS:
                    raise self.fail(line, f"{prefix}: unknown attribute {{{root}.{attr}}}{_suggest(attr, CALL_ATTRS)}")
            elif root not in self.saved:
                names = list(self.parties) + sorted(self.calls) + sorted(self.saved)
                raise self.fail(line, f"{prefix}: unknown variable {{{root}.{attr}}}: {root!r} is not a party, "
                                      f"call or saved message{_suggest(root, names)}")

    def number(self, node: LDict, key: str, default: float) -> float:
        return float(node.get(key, default))

    # -- each step kind --------------------------------------------------------------------
    def step_call(self, node, prefix, common) -> CallStep:
        name = self.save_name(node, "call", prefix)
        caller = self.party(node, "from", prefix)
        callee = self.party(node, "to", prefix)
        if caller == callee:
            raise self.fail(node.line, f"{prefix}: a party cannot call itself")
        step = CallStep(**common, name=name, caller=caller, callee=callee,
                        headers=self.headers(node, "headers", prefix, matchers=False),
                        expect=self.status_spec(node.get("expect", "2xx"), line_of(node, "expect"), prefix),
                        timeout=self.number(node, "timeout", 10.0), sdp=bool(node.get("sdp", True)),
                        wait_answer=bool(node.get("wait_answer", True)))
        (self.calls if step.wait_answer else self.saved).add(name)
        return step

    def step_send(self, node, prefix, common) -> SendStep:
        sender = self.party(node, "from", prefix, agent_only=True)
        raw = self.opt_str(node, "raw", prefix)
        call = self.call_ref(node, "in", prefix)
        to = self.party(node, "to", prefix, required=False)
        uri = self.opt_str(node, "uri", prefix)
        if call is None and to is None and uri is None:
            raise self.fail(node.line, f"{prefix}: send needs 'in: <call>' (in dialog) or 'to: <party>'")
        step = SendStep(**common, method=node.get("send") or "", sender=sender, call=call, to=to, uri=uri,
                        headers=self.headers(node, "headers", prefix, matchers=False),
                        body=self.opt_str(node, "body", prefix), content_type=self.opt_str(node, "content_type", prefix),
                        save=self.save_name(node, "save", prefix), raw=raw)
        if step.save:
            self.saved.add(step.save)
        return step

    def step_expect(self, node, prefix, common) -> ExpectStep:
        what = node.get("expect")
        if what is None or not is_valid_kind(str(what)):
            raise self.fail(line_of(node, "expect"), f"{prefix}: expect needs a method (NOTIFY) or a status "
                                                     f"(202, '2xx', '>=300'), got {what!r}")
        at = self.party(node, "at", prefix, agent_only=True)
        sipfrag = node.get("sipfrag")
        if sipfrag is not None:
            sipfrag = self.status_spec(sipfrag, line_of(node, "sipfrag"), prefix, "sipfrag status")
        step = ExpectStep(**common, what=str(what), at=at, call=self.call_ref(node, "in", prefix),
                          response_to=self.saved_ref(node, "for", prefix),
                          headers=self.headers(node, "headers", prefix, matchers=True), sipfrag=sipfrag,
                          state=node.get("state"), timeout=self.number(node, "timeout", 5.0),
                          optional=bool(node.get("optional", False)), save=self.save_name(node, "save", prefix),
                          reply=node.get("reply"),
                          reply_headers=self.headers(node, "reply_headers", prefix, matchers=False),
                          reply_body=self.opt_str(node, "reply_body", prefix),
                          reply_content_type=self.opt_str(node, "reply_content_type", prefix),
                          answer=bool(node.get("answer", False)), if_absent=node.get("if_absent", "fail"))
        if step.answer and str(what).upper() != "INVITE":
            raise self.fail(line_of(node, "answer"), f"{prefix}: answer: true only applies to expect: INVITE")
        if step.save:
            self.saved.add(step.save)
            if step.answer:
                self.calls.add(step.save)
        return step

    def step_expect_none(self, node, prefix, common) -> ExpectNoneStep:
        what = node.get("expect_none")
        if not is_valid_kind(str(what)):
            raise self.fail(line_of(node, "expect_none"), f"{prefix}: expect_none needs a method or status")
        return ExpectNoneStep(**common, what=str(what), at=self.party(node, "at", prefix, agent_only=True),
                              call=self.call_ref(node, "in", prefix), within=self.number(node, "within", 2.0),
                              headers=self.headers(node, "headers", prefix, matchers=True))

    def step_reply(self, node, prefix, common) -> ReplyStep:
        step = ReplyStep(**common, status=node["reply"], at=self.party(node, "at", prefix, agent_only=True),
                         to=self.saved_ref(node, "to", prefix),
                         headers=self.headers(node, "headers", prefix, matchers=False),
                         body=self.opt_str(node, "body", prefix), content_type=self.opt_str(node, "content_type", prefix),
                         save=self.save_name(node, "save", prefix))
        if step.save:
            self.calls.add(step.save)
            self.saved.add(step.save)
        return step

    def step_notify(self, node, prefix, common) -> NotifyStep:
        expect = node.get("expect")
        step = NotifyStep(**common, status=node["notify"], sender=self.party(node, "from", prefix, agent_only=True),
                          refer=self.saved_ref(node, "for", prefix), final=node.get("final"),
                          expect=None if expect is None else self.status_spec(expect, line_of(node, "expect"), prefix),
                          timeout=self.number(node, "timeout", 5.0),
                          headers=self.headers(node, "headers", prefix, matchers=False),
                          save=self.save_name(node, "save", prefix))
        if step.save:
            self.saved.add(step.save)
        return step

    def step_collect(self, node, prefix, common) -> CollectStep:
        first = node.get("first_timeout")
        step = CollectStep(**common, what=node["collect"], at=self.party(node, "at", prefix, agent_only=True),
                           call=self.call_ref(node, "in", prefix), until=node.get("until", "final"),
                           timeout=self.number(node, "timeout", 5.0),
                           first_timeout=None if first is None else float(first), max=int(node.get("max", 8)),
                           save=self.save_name(node, "save", prefix), if_absent=node.get("if_absent", "fail"))
        self.lists.add(step.save)
        return step

    def step_any_order(self, node, prefix, common) -> AnyOrderStep:
        group = node["any_order"]
        if not isinstance(group, LList) or len(group) < 2:
            raise self.fail(line_of(node, "any_order"), f"{prefix}: any_order needs a list of at least two expect steps")
        steps = [self.step(child, f"{common['index']}.{i + 1}", in_group=True) for i, child in enumerate(group)]
        return AnyOrderStep(**common, steps=steps)

    def step_dut(self, node, prefix, common) -> DutStep:
        action = node.get("dut")
        if action not in DUT_ACTIONS:
            raise self.fail(line_of(node, "dut"), f"{prefix}: unknown DUT action {action!r}{_suggest(action, DUT_ACTIONS)}")
        args = node.get("args", {}) or {}
        for value in args.values():
            if isinstance(value, str):
                self.check_variables(value, line_of(node, "args"), prefix)
        step = DutStep(**common, action=action, args=dict(args), timeout=self.number(node, "timeout", 10.0),
                       save=self.save_name(node, "save", prefix))
        if step.save:
            self.saved.add(step.save)
        return step

    def step_wait(self, node, prefix, common) -> WaitStep:
        return WaitStep(**common, seconds=self.number(node, "wait", 0.0))

    def step_set(self, node, prefix, common) -> SetStep:
        party = self.party(node, "set", prefix, agent_only=True)
        return SetStep(**common, party=party, options=dict(node["options"]))

    def step_check(self, node, prefix, common) -> LibraryCall:
        return self.library_call(node, "check", prefix, common)

    def step_do(self, node, prefix, common) -> LibraryCall:
        return self.library_call(node, "do", prefix, common)

    def library_call(self, node, kind, prefix, common) -> LibraryCall:
        name = node[kind]
        entry = library().get(name)
        if entry is None or entry.kind != kind:
            names = [n for n, e in library().items() if e.kind == kind]
            from .library import LOAD_ERRORS
            broken = ("; " + "; ".join(LOAD_ERRORS)) if LOAD_ERRORS else ""
            raise self.fail(line_of(node, kind), f"{prefix}: unknown {kind} {name!r}{_suggest(name, names)} "
                                                 f"(`referee steps` lists them){broken}")
        self.structure.check_args(node, entry, prefix)
        args = dict(node.get("args", {}) or {})
        aline = line_of(node, "args") or node.line
        for arg, param in entry.params.items():
            if arg not in args:
                continue
            value = args[arg]
            values = value if isinstance(value, list) else [value]
            for v in values:
                if param.type == "party":
                    self.party(args, arg, prefix, value=v)
                elif param.type == "call":
                    self.call_ref(args, arg, prefix, value=v)
                elif param.type == "saved":
                    self.saved_ref(args, arg, prefix, value=v, pool=self.saved | self.calls)
                elif param.type == "saved_list":
                    self.saved_ref(args, arg, prefix, value=v, pool=self.lists)
                elif param.type == "status":
                    self.status_spec(v, aline, prefix)
                elif param.type in ("new_call", "new_saved", "new_list"):
                    if v in self.parties:
                        raise self.fail(aline, f"{prefix}: {arg} name {v!r} clashes with a party")
                    {"new_call": self.calls, "new_saved": self.saved, "new_list": self.lists}[param.type].add(v)
                    if param.type == "new_call":
                        self.saved.add(v)
                elif isinstance(v, str):
                    self.check_variables(v, aline, prefix)
        return LibraryCall(**common, kind=kind, name=name, args=args)

