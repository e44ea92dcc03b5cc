"""Registry of search methods and their YAML parameter grids.

Every module of the ``methods`` package (names not starting with ``_``) is imported when
the registry is first imported; a module adds its classes with the ``@register``
decorator. Plugins call ``register`` on their own classes (a later ``bench.methods`` entry
point or ``--plugin file.py`` only has to import the file). A method's grid lives in
``<name>.yml`` beside its module (or in the class's ``config_file``):

    build:   # list of build-parameter dicts; the first is the default
      - {K: 16, L: 1}
    query:   # list of query-parameter dicts: the sweep, in increasing work order
      - {radius: 0}
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import yaml

from methods.base import Method

METHODS: dict[str, type[Method]] = {}
_discovered = False


def register(cls: type[Method]) -> type[Method]:
    """Add a Method subclass to the registry under ``cls.name``; usable as a class decorator."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"register() expects a Method subclass, got {cls!r}")
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no 'name'")
    existing = METHODS.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"method name {cls.name!r} is already registered by "
                         f"{existing.__module__}.{existing.__qualname__}")
    METHODS[cls.name] = cls
    return cls


def discover() -> None:
    """Import every built-in method module of this package (once), so each registers itself."""
    global _discovered
    if _discovered:
        return
    import methods

    for info in pkgutil.iter_modules(methods.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"methods.{info.name}")
    _discovered = True


def method_names() -> list[str]:
    """Names of all registered methods, sorted."""
    discover()
    return sorted(METHODS)


def method_class(name: str) -> type[Method]:
    """The class registered as ``name``; ValueError listing the choices if there is none."""
    discover()
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choices: {', '.join(sorted(METHODS))}") from None


def get_method(name: str, **build_params: Any) -> Method:
    """A new instance of method ``name``; ``build_params`` may also hold seed, threads, device."""
    return method_class(name)(**build_params)


def load_grid(name: str) -> dict[str, list[dict[str, Any]]]:
    """The method's grid: ``{"build": [...], "query": [...]}``, checked against its parameters."""
    cls = method_class(name)
    path = cls.config_path()
    if not path.is_file():
        raise FileNotFoundError(f"method {name!r} has no grid file {path}")
    with open(path, encoding="utf-8") as fh:
        grid = yaml.safe_load(fh) or {}
    for section, allowed in (("build", cls.build_defaults), ("query", cls.query_defaults)):
        points = grid.get(section)
        if not isinstance(points, list) or not points:
            raise ValueError(f"{path}: '{section}' must be a non-empty list of parameter dicts")
        for i, point in enumerate(points):
            if point is None:
                points[i] = point = {}
            if not isinstance(point, dict):
                raise ValueError(f"{path}: {section}[{i}] must be a dict, got {point!r}")
            unknown = sorted(set(point) - set(allowed))
            if unknown:
                raise ValueError(f"{path}: {section}[{i}] has unknown parameter(s) {unknown}; "
                                 f"allowed: {sorted(allowed) or 'none'}")
    extra = sorted(set(grid) - {"build", "query"})
    if extra:
        raise ValueError(f"{path}: unknown section(s) {extra}; allowed: build, query")
    return {"build": grid["build"], "query": grid["query"]}


discover()
