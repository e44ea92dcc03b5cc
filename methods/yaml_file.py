"""Reading YAML files: PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML
keeps the last silently, so a config could hold two values of a field and use one)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse duplicate keys, naming the key and both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first is not None:  # a second key, on another line or (a flow mapping) on the same one
                where = f"lines {first} and {line}" if first != line else f"line {line}"
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping ({where}); keep one", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> Any:
    """The parsed YAML ``text`` (None when empty); errors (bad syntax, a duplicate key) name ``source``."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None)
        mark = getattr(exc, "problem_mark", None)
        if problem and "appears twice" in problem:
            raise ValueError(f"{source}: {problem}") from None
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValueError(f"{source}: not valid YAML{where}: {problem or exc}") from None


def read_yaml(path: Path | str, what: str = "config file") -> Any:
    """The parsed YAML of ``path`` ({} when empty); errors name the file (and ``what`` it is when missing)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} does not exist") from None
    return parse_yaml(text, str(path)) or {}
