"""Load YAML while remembering where every value came from.

Validation errors must name file and line, so the loader keeps a map from each value's
path (a tuple of keys and list indexes) to its line. Duplicate keys, which PyYAML would
silently let the last one win, are reported instead.

Input is untrusted, so building values is bounded: nesting depth, and how many values
aliases (`*name`, and `<<` merges) may add, so a few hundred bytes of nested aliases (the
"billion laughs") cannot take minutes and gigabytes; an alias inside the value it names is
a loop, reported as such.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from hostctl.errors import Problem

Path = tuple[str | int, ...]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Deeper than any hostctl file needs (a spec nests 5 levels), and far from Python's recursion
# limit, which both this loader and everything that walks the values later would hit.
MAX_DEPTH = 64
# Values that aliases and merges may add to one file: generous for `<<: *defaults` on
# hundreds of hosts, small enough that the worst case takes well under a second.
MAX_ALIASED_VALUES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


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
    budget = _Budget()
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = Document(file=file, data=None, start_line=node.start_mark.line + 1)
            doc.data = _Builder(loader, doc, budget).value(node, (), False)
            docs.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = exc.problem or exc.context or "malformed YAML"
        raise YamlProblem(Problem(file, line, "", f"invalid YAML: {what}")) from None
    except yaml.reader.ReaderError as exc:
        raise YamlProblem(_reader_problem(exc, text, file)) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Problem(file, 0, "", f"invalid YAML: {exc}")) from None
    finally:
        loader.dispose()
    return docs


def _reader_problem(exc: yaml.reader.ReaderError, text: str, file: str) -> Problem:
    """A character YAML does not allow, by line and column (PyYAML says "position N")."""
    pos = min(max(exc.position, 0), len(text))
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    char = exc.character if isinstance(exc.character, str) else chr(exc.character)
    return Problem(file, line, "", f"invalid YAML: control character U+{ord(char):04X} at "
                                   f"column {column}; remove it (inside double quotes YAML "
                                   f"reads the escape \\x{ord(char):02x} instead)"
                   if ord(char) < 0x100 else
                   f"invalid YAML: character U+{ord(char):04X} at column {column} is not "
                   "allowed in YAML; remove it")


@dataclass
class _Budget:
    """What aliases have added so far in one file."""

    aliased: int = 0


class _Builder:
    """Turns one document's node graph into values, recording lines and enforcing bounds."""

    def __init__(self, loader: yaml.SafeLoader, doc: Document, budget: _Budget):
        self.loader, self.doc, self.budget = loader, doc, budget
        self.seen: set[int] = set()  # collection nodes built once already (alias targets)
        self.open: set[int] = set()  # collection nodes being built (a loop if met again)

    def fail(self, line: int, path: Path, message: str) -> YamlProblem:
        return YamlProblem(Problem(self.doc.file, line, _fmt(path), message))

    def value(self, node: yaml.Node, path: Path, aliased: bool, used_at: int = 0) -> Any:
        """The value of `node` at `path`; `used_at`: the line that refers to it (an alias's
        node is the anchored one, so its own line is the anchor's)."""
        line = node.start_mark.line + 1
        self.doc.lines[path] = line
        if aliased:
            self.count(line, path)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if len(path) >= MAX_DEPTH:
            raise self.fail(line, (*path[:3], "..."), f"nested more than {MAX_DEPTH} levels "
                                                        "deep; no hostctl setting is")
        key = id(node)
        if key in self.open:
            raise self.fail(used_at or line, path,
                            "invalid YAML: an alias refers to a value that contains it (a "
                            "loop); use the alias outside the anchored value")
        if key in self.seen and not aliased:  # an alias: what it adds counts
            aliased = True
            self.count(line, path)
        self.seen.add(key)
        self.open.add(key)
        if isinstance(node, yaml.MappingNode):
            result: Any = self.mapping(node, path, aliased)
        else:
            result = [self.value(item, (*path, i), aliased) for i, item in enumerate(node.value)]
        self.open.discard(key)
        return result

    def count(self, line: int, path: Path) -> None:
        self.budget.aliased += 1
        if self.budget.aliased > MAX_ALIASED_VALUES:
            raise self.fail(line, path, f"aliases expand to more than {MAX_ALIASED_VALUES} "
                                        "values in this file; write the values out, or reuse "
                                        "fewer of them")

    def scalar(self, node: yaml.Node, path: Path) -> Any:
        if node.tag == _STR_TAG:  # what construct_object gives a string: its text
            return node.value
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError):
            # Python refuses to read integers of more than 4300 digits (CVE-2020-10735).
            raise self.fail(node.start_mark.line + 1, path,
                            "this number is too long to read; write a shorter one, or quote "
                            "it if it is text") from None

    def mapping(self, node: yaml.MappingNode, path: Path, aliased: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        written: dict[str, Any] = out  # keys written here (not merged)
        if any(key_node.tag == _MERGE_TAG for key_node, _ in node.value):
            # YAML's merge keys (`<<: *defaults`) first: keys written here win over merged
            # ones, and their lines too.
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    self.merge(value_node, path, aliased, out, key_node.start_mark.line + 1)
            written = {}
        lines = self.doc.lines
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                if not isinstance(key, int | float | bool):
                    raise self.fail(line, path, "mapping keys must be plain scalars")
                key = str(key)
            if key in written:
                raise self.fail(line, (*path, key), f"duplicate key '{key}' (first at line "
                                                    f"{lines[(*path, key)]}); remove one of them")
            value = self.value(value_node, (*path, key), aliased, line)
            written[key] = out[key] = value
            # Point at the key, not at a block value starting on the next line.
            lines[(*path, key)] = line
        lines[path] = node.start_mark.line + 1
        return out

    def merge(self, node: yaml.Node, path: Path, aliased: bool, out: dict[str, Any],
              used_at: int) -> None:
        """Add what `<<: *defaults` or `<<: [*a, *b]` brings to `out`, where a key already
        there wins (the first mapping listed wins a key)."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise self.fail(source.start_mark.line + 1, path,
                                "invalid YAML: '<<' merges a mapping or a list of mappings")
            # Built with lines of its own, so those of keys that lose are not kept.
            lines, self.doc.lines = self.doc.lines, {}
            try:
                values = self.value(source, path, aliased, used_at)
            finally:
                mine, self.doc.lines = self.doc.lines, lines
            new = {k for k in values if k not in out}
            out.update((k, v) for k, v in values.items() if k in new)
            lines.update((p, n) for p, n in mine.items() if len(p) > len(path)
                         and p[len(path)] in new)


def _fmt(path: Path) -> str:
    # An empty key is shown as "", so the field is named even then.
    return "/".join([str(p) if p != "" else '""' for p in path])  # a list: join's fast path


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
