"""Load YAML while remembering where every value came from.

Validation errors must name file and line, so the loader keeps a map from each value's
path (a tuple of keys and list indexes) to its line. Duplicate keys, which PyYAML would
silently let the last one win, are reported instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from hostctl.errors import Problem

Path = tuple[str | int, ...]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Document:
    """One YAML document: its data, and the line of every value by path."""

    file: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    start_line: int = 1

    def line_of(self, path: Path) -> int:
        """Line of the value at `path`, or of its nearest ancestor that exists."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.start_line


class YamlProblem(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(str(problem))


def load_documents(text: str, file: str) -> list[Document]:
    """Parse every document of `text`; raise YamlProblem on malformed YAML or duplicate keys."""
    loader = _Loader(text)
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = Document(file=file, data=None, start_line=node.start_mark.line + 1)
            doc.data = _convert(loader, node, (), doc)
            docs.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = exc.problem or exc.context or "malformed YAML"
        raise YamlProblem(Problem(file, line, "", f"invalid YAML: {what}")) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Problem(file, 0, "", f"invalid YAML: {exc}")) from None
    finally:
        loader.dispose()
    return docs


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path, doc: Document) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<` merge keys the way PyYAML does
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise YamlProblem(
                    Problem(doc.file, key_node.start_mark.line + 1, _fmt(path),
                            "mapping keys must be plain scalars")
                )
            key = str(key) if not isinstance(key, str) else key
            if key in out:
                raise YamlProblem(
                    Problem(doc.file, key_node.start_mark.line + 1, _fmt((*path, key)),
                            f"duplicate key '{key}' (first at line {doc.lines[(*path, key)]}); "
                            "remove one of them")
                )
            out[key] = _convert(loader, value_node, (*path, key), doc)
            # Point at the key, not at a block value starting on the next line.
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, (*path, i), doc) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _fmt(path: Path) -> str:
    return "/".join(str(p) for p in path)


def format_path(path: Path) -> str:
    """Render a value path the way error messages show it: `health/port`, `ports/0`."""
    return _fmt(path)


def iter_paths(data: Any, path: Path = ()) -> Iterator[Path]:
    """Every path inside `data` (used by tests to check line maps are complete)."""
    yield path
    if isinstance(data, dict):
        for k, v in data.items():
            yield from iter_paths(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from iter_paths(v, (*path, i))
