"""Tracker modules (MOD, XM, IT, S3M, STM) rendered to audio files with libopenmpt.

Some game packages keep their music as tracker modules: note patterns and instrument samples,
which no audio reader decodes. libopenmpt, the OpenMPT project's player library, renders them. No
Python package wraps it, so this module loads it with :mod:`ctypes`: the system's copy when the
dynamic linker finds one, else Debian's ``libopenmpt0`` and the libraries it needs, fetched like
any other Debian package (``apt-get download`` + ``dpkg -x``, never installed) into
``cache_dir("libopenmpt")``. Each module is rendered once, mono at :data:`RENDER_RATE`, to a FLAC
file; the song plays once through (libopenmpt's end-of-song detection, no repeats), cut at
:data:`MAX_SECONDS`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from datasets.errors import UserError

MODULE_EXTENSIONS = (".mod", ".xm", ".it", ".s3m", ".stm")
#: fnmatch patterns of the rendered files (``<module path>.flac``), for a package rule's ``files``
MODULE_RENDERS = tuple(f"*{ext}.flac" for ext in MODULE_EXTENSIONS)
RENDER_RATE = 44100
MAX_SECONDS = 1800.0
#: Debian bookworm packages holding libopenmpt and the libraries it links, in load order
LIBRARY_PACKAGES = ("libogg0", "libvorbis0a", "libvorbisfile3", "libmpg123-0", "libopenmpt0")
_SONAMES = ("libogg.so.0", "libvorbis.so.0", "libvorbisfile.so.3", "libmpg123.so.0", "libopenmpt.so.0")


class TrackerRenderError(UserError, RuntimeError):
    """libopenmpt could not be loaded, or a module could not be rendered; the message says which."""


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    lib.openmpt_module_create_from_memory2.restype = ctypes.c_void_p
    lib.openmpt_module_create_from_memory2.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.c_void_p]
    lib.openmpt_module_read_float_mono.restype = ctypes.c_size_t
    lib.openmpt_module_read_float_mono.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_size_t,
                                                   ctypes.POINTER(ctypes.c_float)]
    lib.openmpt_module_destroy.argtypes = [ctypes.c_void_p]
    return lib


@functools.lru_cache(maxsize=None)
def load_libopenmpt(root: Path | None = None, fetch: bool = True, progress: bool = False) -> ctypes.CDLL:
    """libopenmpt, loaded once per process: the system's, else the :data:`LIBRARY_PACKAGES` under
    ``root`` (default ``cache_dir("libopenmpt")``), fetched there first when ``fetch``. Raises
    :class:`TrackerRenderError` saying what is missing."""
    found = ctypes.util.find_library("openmpt")
    if found:
        try:
            return _declare(ctypes.CDLL(found))
        except OSError:
            pass
    from datasets.cache import cache_dir
    from datasets.debian_packages import DebianFetchError, fetch_packages, find_extracted

    root = Path(root) if root is not None else cache_dir("libopenmpt")
    try:
        trees = (fetch_packages(LIBRARY_PACKAGES, root, progress, label="libopenmpt") if fetch
                 else find_extracted(root, LIBRARY_PACKAGES))
    except (DebianFetchError, FileNotFoundError) as exc:
        raise TrackerRenderError(f"libopenmpt is not on this system and its Debian packages could not be had "
                                 f"({exc}); tracker modules cannot be rendered") from None
    lib = None
    for soname in _SONAMES:
        paths = [p for tree in trees.values() for p in sorted(tree.glob(f"usr/lib/*/{soname}"))]
        if not paths:
            raise TrackerRenderError(f"{soname}: not in the packages extracted under {root} "
                                     f"({', '.join(LIBRARY_PACKAGES)})")
        try:
            lib = ctypes.CDLL(str(paths[0]), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            raise TrackerRenderError(f"{paths[0]}: cannot be loaded ({exc})") from None
    return _declare(lib)


def render_module(path: Path | str, dest: Path | str, lib: ctypes.CDLL | None = None,
                  sample_rate: int = RENDER_RATE, max_seconds: float = MAX_SECONDS) -> float:
    """Render the tracker module ``path`` once through, mono, to the FLAC file ``dest`` (written
    under a temporary name, then renamed); return its length in seconds. Raises
    :class:`TrackerRenderError` naming the file when libopenmpt does not read it."""
    lib = lib or load_libopenmpt()
    data = Path(path).read_bytes()
    error = ctypes.c_int(0)
    silent = ctypes.cast(lib.openmpt_log_func_silent, ctypes.c_void_p)  # the error is raised, not printed
    module = lib.openmpt_module_create_from_memory2(data, len(data), silent, None, None, None,
                                                    ctypes.byref(error), None, None)
    if not module:
        raise TrackerRenderError(f"{path}: libopenmpt cannot read it as a tracker module (error {error.value})")
    chunks, total, limit = [], 0, int(max_seconds * sample_rate)
    try:
        while total < limit:
            buf = np.zeros(min(sample_rate, limit - total), dtype=np.float32)
            n = lib.openmpt_module_read_float_mono(module, sample_rate, len(buf),
                                                   buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
            if n == 0:
                break
            chunks.append(buf[:n])
            total += n
    finally:
        lib.openmpt_module_destroy(module)
    if not total:
        raise TrackerRenderError(f"{path}: libopenmpt renders no audio from it")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.rendering")
    sf.write(tmp, np.clip(np.concatenate(chunks), -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    os.replace(tmp, dest)
    return total / sample_rate


def render_modules(tree: Path, dest_root: Path, skip: tuple[str, ...] = ()) -> int:
    """Render every tracker module under ``tree`` (outside ``skip`` folders) to
    ``dest_root/<path>.flac``, once: a render already there is kept. Returns how many were rendered;
    a module libopenmpt does not read is skipped (its render is never written)."""
    n = 0
    for p in sorted(tree.rglob("*")):
        rel = p.relative_to(tree)
        if p.suffix.lower() not in MODULE_EXTENSIONS or not p.is_file() or p.is_symlink() \
                or any(part in skip for part in rel.parts):
            continue
        dest = dest_root / (rel.as_posix() + ".flac")
        if dest.exists():
            continue
        try:
            render_module(p, dest)
        except TrackerRenderError:
            continue
        n += 1
    return n
