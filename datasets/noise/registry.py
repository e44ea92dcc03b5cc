"""Noise banks by spec: ``open_noise_bank("synth" | "debian" | FOLDER | "a+b")``.

The one module that knows every bank; no bank imports it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from datasets.protocol import Protocol

from .bank import CombinedNoiseBank, NoiseBank, NoiseBankError
from .folder import FolderNoiseBank
from .synth import SynthNoiseBank


def _open_one(spec: str, protocol: Protocol, progress: bool = True, **kwargs) -> NoiseBank:
    if spec == "synth":
        return SynthNoiseBank(protocol, **kwargs)
    if spec == "debian":
        from .debian import DebianNoiseBank

        return DebianNoiseBank(protocol, progress=progress, **kwargs)
    path = Path(spec).expanduser()
    if spec and path.is_dir():
        return FolderNoiseBank(path, protocol, **kwargs)
    raise NoiseBankError(f"noise bank spec {spec!r}: expected 'synth', 'debian' or an existing folder of "
                         f"audio files, or several joined by '+' such as 'synth+debian' "
                         f"({path} is not a directory)")


def open_noise_bank(spec: str, protocol: Protocol = Protocol(), progress: bool = True, **kwargs) -> NoiseBank:
    """A noise bank from a spec.

    ``'synth'``: synthetic noise (:class:`SynthNoiseBank`); ``'debian'``: real ambience from
    Debian game packages (:class:`datasets.noise.debian.DebianNoiseBank`, fetched with apt
    on first use); the path of a folder of recordings (:class:`FolderNoiseBank`; write
    ``./debian`` for a folder named like a bank); or several of these joined by ``'+'``, e.g.
    ``'synth+debian'``: a :class:`CombinedNoiseBank` in which each member keeps its own clips
    and splits. Extra keyword arguments go to the bank's constructor; for a combined spec,
    pass one dict per member, keyed by its part of the spec (``debian={"fetch": False}``).
    ``progress=False`` hides the bars of a bank that fetches or analyses its clips.
    """
    if "+" in spec and not Path(spec).expanduser().is_dir():
        parts = spec.split("+")
        if any(not p for p in parts):
            raise NoiseBankError(f"noise bank spec {spec!r}: an empty part between '+' signs")
        if len(set(parts)) != len(parts):
            raise NoiseBankError(f"noise bank spec {spec!r}: a bank is named twice")
        unknown = sorted(set(kwargs) - set(parts))
        if unknown:
            raise NoiseBankError(f"noise bank spec {spec!r}: options {unknown} name no part of the spec; "
                                 f"pass one dict of constructor options per part ({parts})")
        bad = sorted(k for k, v in kwargs.items() if not isinstance(v, Mapping))
        if bad:
            raise NoiseBankError(f"noise bank spec {spec!r}: options for {bad} must be dicts of constructor options")
        members = {p: dict(kwargs.get(p, {})) for p in parts}
        return CombinedNoiseBank([_open_one(p, protocol, members[p].pop("progress", progress), **members[p])
                                  for p in parts])
    return _open_one(spec, protocol, progress, **kwargs)
