"""Registry of encoder plugins, and how a run config's ``encoder`` string selects one.

An encoder plugin is a subclass of :class:`encoders.interface.Encoder` registered with
``@register_encoder``; the run builds it as ``cls(**encoder_params)``. Plugins come from:

- this package: the built-in ``checkpoint`` encoder (:class:`encoders.builtin.checkpoint.CheckpointEncoder`);
- an installed package's entry point in the group ``bench.encoders`` naming a module (whose
  import registers its classes) or an Encoder subclass;
- a module file: ``encoder: path/to/my_encoder.py`` (it must register exactly one encoder) or
  ``path/to/my_encoder.py:NAME``.

The ``encoder`` string (:func:`open_encoder`) is, in the order tried: ``precomputed:DIR``
(vectors an outside encoder wrote, :mod:`encoders.precomputed`); a module file as above; a
registered name; else a built-in checkpoint's name or path (``synth-default``, ``model.pt``).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from typing import Any

from datasets.protocol import Protocol

from .builtin.checkpoint import CheckpointEncoder, load_checkpoint
from .interface import Encoder, EncoderError, check_declaration

ENTRY_POINT_GROUP = "bench.encoders"
PRECOMPUTED = "precomputed:"
ENCODERS: dict[str, type[Encoder]] = {}
_entry_points_loaded: set[tuple[str, str]] = set()  # (entry point name, value)
_plugins_loaded: dict[Path, list[str]] = {}


def register_encoder(cls: type[Encoder], name: str | None = None) -> type[Encoder]:
    """Add an Encoder subclass under ``name`` (default ``cls.name``); usable as a class decorator."""
    if not (isinstance(cls, type) and issubclass(cls, Encoder)):
        raise TypeError(f"register_encoder() expects an encoders.interface.Encoder subclass, got {cls!r}")
    name = cls.name if name is None else name
    if not isinstance(name, str) or not name or ":" in name or name.endswith(".py"):
        raise ValueError(f"{cls.__qualname__}: name={name!r}: a non-empty string without ':' not ending in .py")
    existing = ENCODERS.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"encoder name {name!r} is already registered by {existing.__module__}."
                         f"{existing.__qualname__}")
    ENCODERS[name] = cls
    return cls


def _load_entry_points() -> None:
    """Load the ``bench.encoders`` entry points not loaded yet; a failing one raises, naming itself."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if (ep.name, ep.value) in _entry_points_loaded:
            continue
        dist = getattr(ep.dist, "name", None) or "an unknown distribution"
        try:
            obj = ep.load()
            if isinstance(obj, type) and issubclass(obj, Encoder) and ENCODERS.get(obj.name) is not obj:
                register_encoder(obj)
        except Exception as exc:
            raise EncoderError(f"entry point {ep.name!r} = {ep.value!r} (group {ENTRY_POINT_GROUP!r}, from {dist}): "
                               f"{type(exc).__name__}: {exc}") from exc
        _entry_points_loaded.add((ep.name, ep.value))


def encoder_names() -> list[str]:
    """Names of the registered encoders (built-in, entry points, plugin files loaded so far), sorted."""
    _load_entry_points()
    return sorted(ENCODERS)


def load_encoder_plugin(path: str | Path) -> list[str]:
    """Import the module file ``path`` so its ``@register_encoder`` classes register; returns their
    names. Raises FileNotFoundError for a missing file, and EncoderError naming the file when it
    fails to import (the error chained) or registers no encoder; loading a file twice is a no-op."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"encoder plugin file {path} not found")
    resolved = path.resolve()
    if resolved in _plugins_loaded:
        return list(_plugins_loaded[resolved])
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
    module_name = f"bench_encoder_{''.join(c if c.isalnum() else '_' for c in path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise EncoderError(f"encoder plugin {path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    before = dict(ENCODERS)
    sys.modules[module_name] = module  # before exec: dataclasses and inspect look the module up
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        ENCODERS.clear()
        ENCODERS.update(before)
        raise EncoderError(f"encoder plugin {path}: import failed: {type(exc).__name__}: {exc}") from exc
    names = [n for n in ENCODERS if n not in before]
    if not names:
        sys.modules.pop(module_name, None)
        raise EncoderError(f"encoder plugin {path} registered no encoder: decorate an encoders.interface.Encoder "
                           f"subclass with @encoders.registry.register_encoder (see docs/adding-an-encoder.md)")
    _plugins_loaded[resolved] = names
    return list(names)


def _plugin_class(spec: str) -> type[Encoder] | None:
    """The class a ``FILE.py`` or ``FILE.py:NAME`` spec names (loading the file), else None."""
    head, sep, name = spec.partition(".py:")
    if sep:
        file = head + ".py"
    elif spec.endswith(".py"):
        file = spec
    else:
        return None
    names = load_encoder_plugin(file)
    if not name:
        if len(names) != 1:
            raise EncoderError(f"encoder plugin {file} registers {len(names)} encoders ({', '.join(names)}); "
                               f"choose one as {file}:NAME")
        name = names[0]
    if name not in names:
        raise EncoderError(f"encoder plugin {file} registers no encoder {name!r}; it registers: {', '.join(names)}")
    return ENCODERS[name]


def open_encoder(spec: str, protocol: Protocol, device: str = "cpu",
                 params: dict[str, Any] | None = None) -> Encoder:
    """The encoder a run config's ``encoder`` string names (module docstring), built with
    ``params``, checked against the run's ``protocol`` (sample rate, segment length) and moved to
    ``device``. Errors name the spec and what is allowed."""
    params = dict(params or {})
    if spec.startswith(PRECOMPUTED):
        from .precomputed import PrecomputedEncoder

        if params:
            raise EncoderError(f"encoder {spec!r}: precomputed vectors take no encoder_params (got "
                               f"{', '.join(sorted(params))})")
        encoder: Encoder = PrecomputedEncoder(spec[len(PRECOMPUTED):])
    else:
        cls = _plugin_class(spec)
        if cls is None and spec in encoder_names():
            cls = ENCODERS[spec]
        if cls is None:  # a built-in checkpoint by name or path
            if params:
                raise EncoderError(f"encoder {spec!r} is a checkpoint; encoder_params apply to plugin encoders "
                                   f"only (got {', '.join(sorted(params))})")
            return load_checkpoint(spec, protocol, device)
        try:
            encoder = cls.open(protocol, device, **params)
        except TypeError as exc:
            raise EncoderError(f"encoder {spec!r} ({cls.__module__}.{cls.__qualname__}): encoder_params "
                               f"{params} do not fit its constructor ({exc})") from exc
    check_declaration(encoder)
    encoder.check_protocol(protocol)
    return encoder.to(device)


register_encoder(CheckpointEncoder, name="checkpoint")
