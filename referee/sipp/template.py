"""SIPp scenario templates: `${name}` parameters filled in before SIPp sees the file.

Only the braced form `${name}` is a template parameter, so SIPp's own keywords (`[service]`,
`[$var]`, `[last_Via:]`, ...) pass through untouched. Each template declares its parameters
in its header comment, one per line:

    @param refer_to     required   Refer-To header value
    @param bye_wait_ms  2000       how long to wait for the peer's BYE
    @param extra        ""         empty by default ("" quotes a default with spaces)

A line made only of placeholders that render empty - or of a header name followed only by
such placeholders (`Referred-By: ${referred_by}`) - is dropped, so an empty parameter removes
an optional header instead of leaving a blank line (which would end the SIP headers).

Rendering rejects unknown and missing parameters and checks that the result is well-formed
XML, because SIPp's own parser silently accepts some broken files.
"""

from __future__ import annotations

import dataclasses
import re
import xml.parsers.expat
from collections.abc import Mapping
from pathlib import Path

from referee.sipp.errors import SippTemplateError

#: The scenario library shipped with referee (repo root / scenarios / sipp).
SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios" / "sipp"

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_ONLY = re.compile(r"^\s*([A-Za-z][A-Za-z0-9-]*:)?\s*$")
_PARAM_LINE = re.compile(r"^\s*@param\s+([A-Za-z_][A-Za-z0-9_]*)\s+(.*)$")


@dataclasses.dataclass(frozen=True)
class TemplateParam:
    name: str
    default: str | None  # None: required
    doc: str

    @property
    def required(self) -> bool:
        return self.default is None


def scenario_path(name: str | Path, scenario_dir: Path | None = None) -> Path:
    """Resolve a library name ('uas_target' or 'uas_target.xml') or a path to an existing file."""
    candidate = Path(name)
    if candidate.suffix != ".xml" and candidate.parent == Path("."):
        candidate = candidate.with_suffix(".xml")
    if candidate.parent == Path("."):
        library = scenario_dir or SCENARIO_DIR
        if (library / candidate).is_file():
            return library / candidate
        if not candidate.is_file():
            known = ", ".join(list_scenarios(library)) or "(none)"
            raise SippTemplateError(f"scenario {str(name)!r} not found in {library}; known: {known}")
    if not candidate.is_file():
        raise SippTemplateError(f"scenario file {str(candidate)!r} does not exist")
    return candidate.resolve()


def list_scenarios(scenario_dir: Path | None = None) -> list[str]:
    """Names (without .xml) of the scenarios in the library."""
    library = scenario_dir or SCENARIO_DIR
    return sorted(p.stem for p in library.glob("*.xml"))


def template_params(path: Path) -> dict[str, TemplateParam]:
    """The `@param` declarations of a template, in order."""
    text = path.read_text(encoding="utf-8")
    params: dict[str, TemplateParam] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        match = _PARAM_LINE.match(line)
        if not match:
            continue
        name, rest = match.groups()
        if rest.startswith('"'):
            end = rest.find('"', 1)
            if end < 0:
                raise SippTemplateError(f"{path}:{lineno}: @param {name}: default has no closing quote")
            default, doc = rest[1:end], rest[end + 1:]
        else:
            default, _, doc = rest.partition(" ")
        if not default and not rest.startswith('"'):
            raise SippTemplateError(f"{path}:{lineno}: @param {name} has no default (use 'required' or \"\")")
        params[name] = TemplateParam(name, None if default == "required" else default, doc.strip())
    return params


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_text(path: Path, params: Mapping[str, object] | None = None) -> str:
    """Fill a template's `${name}` placeholders; errors name the file and the parameter."""
    declared = template_params(path)
    given = {k: _format(v) for k, v in (params or {}).items()}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise SippTemplateError(
            f"{path.name}: unknown parameter(s) {', '.join(unknown)}; "
            f"this template takes: {', '.join(declared) or '(none)'}")
    missing = sorted(n for n, p in declared.items() if p.required and n not in given)
    if missing:
        raise SippTemplateError(f"{path.name}: missing required parameter(s) {', '.join(missing)}")
    values = {n: p.default for n, p in declared.items() if p.default is not None}
    values.update(given)
    for name, value in values.items():
        if "]]>" in value:
            raise SippTemplateError(f"{path.name}: parameter {name} contains ']]>' which would end a CDATA section")

    text = path.read_text(encoding="utf-8")
    undeclared = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(declared))
    if undeclared:
        raise SippTemplateError(f"{path.name}: uses ${{...}} placeholder(s) not declared with @param: "
                                f"{', '.join(undeclared)}")
    out = []
    for line in text.splitlines(keepends=True):
        if not _PLACEHOLDER.search(line):
            out.append(line)
            continue
        rendered = _PLACEHOLDER.sub(lambda m: values[m.group(1)], line)
        emptied = all(not values[m.group(1)] for m in _PLACEHOLDER.finditer(line))
        if emptied and _HEADER_ONLY.match(rendered.rstrip("\r\n")):
            continue  # optional header left empty: drop the whole line
        out.append(rendered)
    return "".join(out)


def check_well_formed(text: str, label: str) -> None:
    """Raise SippTemplateError quoting the offending line if `text` is not well-formed XML."""
    parser = xml.parsers.expat.ParserCreate()
    try:
        parser.Parse(text.encode("utf-8"), True)
    except xml.parsers.expat.ExpatError as exc:
        lines = text.splitlines()
        line = lines[exc.lineno - 1].strip() if 0 < exc.lineno <= len(lines) else ""
        raise SippTemplateError(
            f"{label} is not well-formed XML: {xml.parsers.expat.ErrorString(exc.code)} "
            f"at line {exc.lineno}, column {exc.offset}: {line!r}") from None


def render(template: str | Path, params: Mapping[str, object] | None, dest: Path,
           scenario_dir: Path | None = None) -> Path:
    """Render a template (library name or path) into file `dest` (or into directory `dest`)."""
    src = scenario_path(template, scenario_dir)
    text = render_text(src, params)
    check_well_formed(text, f"scenario {src.name} (rendered)")
    out = dest / src.name if dest.is_dir() else dest
    out.write_text(text, encoding="utf-8")
    return out
