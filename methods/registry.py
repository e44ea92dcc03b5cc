"""Registry of search methods and their YAML parameter grids.

Every module of the ``methods`` package (names not starting with ``_``; subpackages excluded) is imported when
the registry is first imported; a module adds its classes with the ``@register``
decorator. Methods that live outside this repository are registered the same way:

- an installed package declares an entry point in the group ``bench.methods`` (see
  ``ENTRY_POINT_GROUP``) naming a module (``my_pkg.my_method``), whose import registers its
  classes, or a class (``my_pkg.my_method:MyMethod``), registered if its module did not;
  these are loaded right after the built-in modules, so a name clash names the built-in;
- ``load_plugin("path/to/module.py")`` (``bench run/list --plugin FILE``) imports a module
  file; it must register at least one method.

A method's grid lives in ``<name>.yml`` beside its module (or in the class's ``config_file``):

    build:   # list of build-parameter dicts; the first is the default
      - {K: 16, L: 1}
    query:   # list of query-parameter dicts: the sweep, in increasing work order
      - {radius: 0}
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from methods.base import INPUT_KINDS, Method
from methods.yaml_file import read_yaml

ENTRY_POINT_GROUP = "bench.methods"


class PluginError(ValueError):
    """A method plugin or entry point that cannot be loaded; the message names it."""

METHODS: dict[str, type[Method]] = {}
_discovered = False
_entry_points_done = False
_entry_points_loaded: dict[tuple[str, str], list[str]] = {}  # (entry point name, value) -> methods it added
_plugins_loaded: dict[Path, list[str]] = {}                  # resolved plugin file -> methods it added


def register(cls: type[Method]) -> type[Method]:
    """Add a Method subclass to the registry under ``cls.name``; usable as a class decorator."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"register() expects a Method subclass, got {cls!r}")
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no 'name'")
    if cls.input_kind not in INPUT_KINDS:
        raise ValueError(f"{cls.__qualname__}: input_kind={cls.input_kind!r} is not allowed; "
                         f"choose one of: {', '.join(INPUT_KINDS)}")
    if cls.input_kind != "embedding" and cls._fit is not Method._fit:
        raise ValueError(f"{cls.__qualname__}: a method with input_kind={cls.input_kind!r} cannot override _fit "
                         f"(train pairs exist only as embeddings)")
    existing = METHODS.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"method name {cls.name!r} is already registered by "
                         f"{existing.__module__}.{existing.__qualname__}")
    METHODS[cls.name] = cls
    return cls


def _import_builtins() -> None:
    global _discovered
    if _discovered:
        return
    package = __name__.rpartition(".")[0]  # the methods package, found without importing it back
    for info in pkgutil.iter_modules([str(Path(__file__).resolve().parent)]):
        if not info.name.startswith("_") and not info.ispkg:  # subpackages hold shared machinery, not methods
            importlib.import_module(f"{package}.{info.name}")
    _discovered = True


def discover() -> None:
    """Import every built-in method module of this package, then load the ``bench.methods`` entry
    points, so each registers itself (once; a failing entry point raises again on the next call)."""
    global _entry_points_done
    _import_builtins()
    if not _entry_points_done:
        load_entry_points()
        _entry_points_done = True


def _added_since(before: dict[str, type[Method]]) -> list[str]:
    return [name for name in METHODS if name not in before]


def load_entry_points() -> list[str]:
    """Load the ``bench.methods`` entry points not loaded yet; returns the method names they added.

    An entry point names a module (importing it registers its ``@register`` classes) or a Method
    subclass (registered unless its module already did). Errors name the entry point and its
    distribution; a failed entry point registers nothing.
    """
    _import_builtins()
    added: list[str] = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = (ep.name, ep.value)
        if key in _entry_points_loaded:
            continue
        dist = getattr(ep.dist, "name", None) or "an unknown distribution"
        where = f"entry point {ep.name!r} = {ep.value!r} (group {ENTRY_POINT_GROUP!r}, from {dist})"
        before = dict(METHODS)
        try:
            obj = ep.load()
            if isinstance(obj, type) and issubclass(obj, Method) and METHODS.get(obj.name) is not obj:
                register(obj)
        except Exception as exc:
            METHODS.clear()
            METHODS.update(before)
            raise PluginError(f"{where}: {type(exc).__name__}: {exc}") from exc
        names = _added_since(before)
        if not names and not any(m.__module__ == getattr(obj, "__name__", None) or m is obj
                                 for m in METHODS.values()):
            raise PluginError(f"{where} registered no method: it must name a module whose Method subclasses "
                               f"are decorated with @register, or a Method subclass")
        _entry_points_loaded[key] = names
        added += names
    return added


@dataclass(frozen=True)
class RegistryState:
    """What :func:`snapshot` saves: the registered methods, the plugin files and entry points loaded,
    and the names of the modules imported so far."""

    methods: dict[str, type[Method]]
    plugins: dict[Path, list[str]]
    entry_points: dict[tuple[str, str], list[str]]
    modules: frozenset[str]


def snapshot() -> RegistryState:
    """The registry's state now, for :func:`restore` (tests that register plugins use the pair)."""
    return RegistryState(dict(METHODS), dict(_plugins_loaded), dict(_entry_points_loaded), frozenset(sys.modules))


def restore(state: RegistryState) -> None:
    """Put the registry back as :func:`snapshot` saw it: methods, plugins and entry points registered
    since are forgotten, and the modules that registered them since are unloaded."""
    added = {cls.__module__ for name, cls in METHODS.items() if name not in state.methods}
    for store, saved in ((METHODS, state.methods), (_plugins_loaded, state.plugins),
                         (_entry_points_loaded, state.entry_points)):
        store.clear()
        store.update(saved)
    for name in set(sys.modules) - state.modules:
        if name in added or name.startswith("bench_plugin_"):
            del sys.modules[name]


def loaded_plugins() -> list[Path]:
    """The plugin files loaded so far (resolved paths), in loading order."""
    return list(_plugins_loaded)


def load_plugin(path: str | Path) -> list[str]:
    """Import the module file ``path`` so its ``@register`` classes register; returns their names.

    The module is imported under a name derived from its path (``bench_plugin_<stem>_<hash>``),
    so ``Method.config_path`` finds ``<name>.yml`` beside the file. Loading the same file again
    returns the same names. Raises FileNotFoundError for a missing file, and ValueError naming
    the file when it is not a ``.py`` file, fails to import (the original error is chained),
    clashes with a registered name, or registers no method; a failed plugin registers nothing.
    """
    discover()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"plugin file {path} not found")
    if path.suffix != ".py":
        raise ValueError(f"plugin {path}: not a Python module file (.py)")
    resolved = path.resolve()
    if resolved in _plugins_loaded:
        return list(_plugins_loaded[resolved])
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    module_name = f"bench_plugin_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise ValueError(f"plugin {path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    before = dict(METHODS)
    sys.modules[module_name] = module  # before exec: dataclasses and config_path look the module up
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        METHODS.clear()
        METHODS.update(before)
        raise ValueError(f"plugin {path}: import failed: {type(exc).__name__}: {exc}") from exc
    names = _added_since(before)
    if not names:
        sys.modules.pop(module_name, None)
        raise ValueError(f"plugin {path} registered no method: decorate a methods.base.Method subclass "
                         f"with @methods.registry.register (see docs/adding-a-method.md)")
    _plugins_loaded[resolved] = names
    return list(names)


def plugin_methods() -> dict[str, str]:
    """Methods registered by plugins and entry points: name -> where it came from."""
    out = {name: f"plugin {path}" for path, names in _plugins_loaded.items() for name in names}
    out.update({name: f"entry point {ep_name} = {value}" for (ep_name, value), names in _entry_points_loaded.items()
                for name in names})
    return out


def learns(name: str) -> bool:
    """Whether method ``name`` learns from the train pairs (its class overrides ``Method._fit``)."""
    return method_class(name)._fit is not Method._fit


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


def check_grid_section(name: str, section: str, points: Any, source: str) -> list[dict[str, Any]]:
    """``points`` as a list of parameter dicts of method ``name``'s ``section`` ('build' or 'query'),
    or a ValueError naming ``source``, the section, the entry and the allowed parameters."""
    cls = method_class(name)
    allowed = cls.build_defaults if section == "build" else cls.query_defaults
    if not isinstance(points, list) or not points:
        raise ValueError(f"{source}: '{section}' must be a non-empty list of parameter dicts, got {points!r}")
    out = []
    for i, point in enumerate(points):
        point = {} if point is None else point
        if not isinstance(point, dict):
            raise ValueError(f"{source}: {section}[{i}] must be a dict, got {point!r}")
        unknown = sorted(set(point) - set(allowed))
        if unknown:
            raise ValueError(f"{source}: {section}[{i}] has unknown parameter(s) {unknown}; "
                             f"allowed: {sorted(allowed) or 'none'}")
        out.append(point)
    return out


def load_grid(name: str) -> dict[str, list[dict[str, Any]]]:
    """The method's grid: ``{"build": [...], "query": [...]}``, checked against its parameters."""
    cls = method_class(name)
    path = cls.config_path()
    if not path.is_file():
        raise FileNotFoundError(f"method {name!r} has no grid file {path}")
    grid = read_yaml(path, "grid file")
    if not isinstance(grid, dict):
        raise ValueError(f"{path}: expected a mapping with 'build' and 'query' lists")
    extra = sorted(set(grid) - {"build", "query"})
    if extra:
        raise ValueError(f"{path}: unknown section(s) {extra}; allowed: build, query")
    return {section: check_grid_section(name, section, grid.get(section), str(path)) for section in ("build", "query")}


def resolve_grid(name: str, override: Any = None, source: str = "grids") -> dict[str, list[dict[str, Any]]]:
    """Method ``name``'s grid with an override (``{"build": [...]}``, ``{"query": [...]}`` or both)
    laid over its default grid file: a section the override leaves out comes from the file."""
    if override is None:
        return load_grid(name)
    where = f"{source}.{name}"
    if not isinstance(override, dict):
        raise ValueError(f"{where}: expected a mapping with 'build' and/or 'query' lists, got {override!r}")
    extra = sorted(set(override) - {"build", "query"})
    if extra or not override:
        raise ValueError(f"{where}: unknown section(s) {extra}; give 'build', 'query' or both")
    given = {section: check_grid_section(name, section, points, where) for section, points in override.items()}
    return {**load_grid(name), **given}


discover()


def method_code_files(name: str) -> list[Path]:
    """The source files a method's results depend on: the modules of its class and of every class it
    derives from (a plugin's file included), the interface (``base.py``) and the shared machinery
    (``common/``, ``flow/``)."""
    here = Path(__file__).resolve().parent
    files = {here / "base.py", *here.glob("common/*.py"), *here.glob("flow/*.py")}
    for cls in method_class(name).__mro__:
        module = sys.modules.get(cls.__module__)
        path = getattr(module, "__file__", None)
        if path and cls is not object:
            files.add(Path(path).resolve())
    return sorted(files)


def method_code_hash(name: str) -> str:
    """sha256 (16 hex digits) over the source files of ``method_code_files``: a finished result made by
    other code than the method has now is not reused silently."""
    h = hashlib.sha256()
    for path in method_code_files(name):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]
