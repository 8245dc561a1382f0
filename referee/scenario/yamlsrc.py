"""YAML loading that remembers line numbers, so errors can say `file:line`."""

from __future__ import annotations

import yaml


class LDict(dict):
    """A mapping from YAML with the line of itself (`line`) and of each key (`key_lines`)."""
    line: int = 0
    key_lines: dict


class LList(list):
    line: int = 0


# libyaml's parser where PyYAML was built with it (the Debian and PyPI builds are): the same
# safe constructors and marks, a few times faster than the pure-Python one
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LDict:
    result = LDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise yaml.constructor.ConstructorError(None, None, f"unsupported key {key!r}",
                                                    key_node.start_mark)
        if key in result:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LList:
    result = LList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


class YamlError(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def load_yaml(text: str):
    """Parse YAML text into LDict/LList/scalars. Raises YamlError with the line of the problem."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = exc.problem or str(exc)
        if exc.context:
            what = f"{what} ({exc.context})"
        raise YamlError(f"invalid YAML: {what}", line) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}", 0) from None


def line_of(node, key=None, default: int = 0) -> int:
    if key is not None and isinstance(node, LDict):
        return node.key_lines.get(key, node.line)
    return getattr(node, "line", default) or default
