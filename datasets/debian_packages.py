"""Debian packages as a data source: fetch them with ``apt-get download`` and extract them with
``dpkg -x`` (never installed), find trees already extracted, and read a package's version and
licence file. The debian-music corpus, the debian-distractors corpus and the debian noise bank
all fetch through here."""
from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Iterable, Sequence

from datasets.errors import UserError

MARKER = ".flowhash-package.json"  # written into an extracted tree once its extraction is complete


class DebianFetchError(UserError, RuntimeError):
    """A package could not be fetched or extracted (apt-get/dpkg missing, or a command failed)."""


# --------------------------------------------------------------------------------------
# Fetch: apt-get download + dpkg -x
# --------------------------------------------------------------------------------------

def _hint(root: Path | str) -> str:
    return (f"To use packages extracted elsewhere (`dpkg -x PKG.deb <folder>/PKG` for each package), "
            f"pass root=<folder> with fetch=False (CLI: --path <folder>); the cache folder was {root}.")


def _run(cmd: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)


def _tail(text: str, n: int = 3) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) or "no output"


def find_deb(debs: Path, package: str) -> Path | None:
    """The newest ``PKG_*.deb`` in ``debs`` (package names never hold '_', so the match is exact)."""
    found = sorted(debs.glob(f"{package}_*.deb"), key=lambda p: (p.stat().st_mtime, p.name))
    return found[-1] if found else None


def deb_version(deb: Path) -> str:
    res = _run(["dpkg-deb", "-f", str(deb), "Version"])
    if res.returncode != 0:
        raise DebianFetchError(f"`dpkg-deb -f {deb} Version` failed (exit {res.returncode}): {_tail(res.stderr)}")
    return res.stdout.strip()


def is_extracted(tree: Path) -> bool:
    """Whether ``tree`` holds an extracted package: this module's marker (its extraction is
    renamed into place only when complete), or a ``usr/`` folder a user extracted there."""
    return (tree / MARKER).is_file() or (tree / "usr").is_dir()


def fetch_package(package: str, dest: Path | str) -> Path:
    """Download one package into ``dest/debs`` and extract it to ``dest/<package>``; return that folder.

    A ``.deb`` already in ``dest/debs`` is reused; extraction goes to a temporary folder that
    is renamed into place only when complete. Raises :class:`DebianFetchError` naming the
    package and the command that failed.
    """
    dest = Path(dest)
    debs = dest / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    deb = find_deb(debs, package)
    version = None
    if deb is not None:
        try:
            version = deb_version(deb)
        except DebianFetchError:  # a broken or partial download: fetch it again
            deb.unlink()
            deb = None
    if deb is None:
        res = _run(["apt-get", "download", package], cwd=debs)
        deb = find_deb(debs, package)
        if res.returncode != 0 or deb is None:
            raise DebianFetchError(
                f"package {package}: `apt-get download {package}` failed (exit {res.returncode}): "
                f"{_tail(res.stderr or res.stdout)}. If apt has no package lists yet, run `apt-get update` "
                f"first. {_hint(dest)}")
        version = deb_version(deb)
    tmp = dest / f".{package}.extracting"
    if tmp.exists():
        shutil.rmtree(tmp)
    res = _run(["dpkg", "-x", str(deb), str(tmp)])
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DebianFetchError(f"package {package}: `dpkg -x {deb} {tmp}` failed (exit {res.returncode}): "
                               f"{_tail(res.stderr)}. {_hint(dest)}")
    (tmp / MARKER).write_text(json.dumps({"package": package, "version": version, "deb": deb.name,
                                          "deb_bytes": deb.stat().st_size}, indent=2) + "\n")
    final = dest / package
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def fetch_packages(packages: Iterable[str], dest: Path | str, progress: bool = True,
                   errors: dict[str, str] | None = None, label: str = "debian-music") -> dict[str, Path]:
    """Fetch and extract packages into ``dest``; return {package: extracted folder}.

    Packages already extracted there are reused without apt. If apt-get, dpkg or dpkg-deb is
    missing while a package still needs fetching, raise :class:`DebianFetchError`. A package
    whose download or extraction fails is left out with a warning naming it (and ``label``,
    the data set it was for), and its error is stored in ``errors`` (when given); if every
    package fails, raise.
    """
    from datasets.progress import tqdm

    dest = Path(dest)
    packages = list(dict.fromkeys(packages))
    out: dict[str, Path] = {p: dest / p for p in packages if is_extracted(dest / p)}
    need = [p for p in packages if p not in out]
    if not need:
        return {p: out[p] for p in packages}
    missing = [tool for tool in ("apt-get", "dpkg", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise DebianFetchError(
            f"cannot fetch {', '.join(need)}: {', '.join(missing)} not found on PATH. This recipe runs "
            f"`apt-get download PKG` and `dpkg -x PKG.deb DIR` (Debian/Ubuntu). {_hint(dest)}")
    failed: dict[str, str] = {}
    for pkg in tqdm(need, desc="fetching debian packages", unit="pkg", disable=not progress):
        try:
            out[pkg] = fetch_package(pkg, dest)
        except DebianFetchError as exc:
            failed[pkg] = str(exc)
            warnings.warn(f"{label}: leaving out package {pkg}: {exc}", stacklevel=2)
    if errors is not None:
        errors.update(failed)
    if not out:
        raise DebianFetchError("no package could be fetched:\n" + "\n".join(failed.values()))
    return {p: out[p] for p in packages if p in out}


def find_extracted(root: Path | str, packages: Iterable[str],
                   errors: dict[str, str] | None = None) -> dict[str, Path]:
    """Extracted trees already under ``root`` (``root/<package>/``), without fetching anything.

    Packages with no folder are reported in ``errors``; if none is found, raise FileNotFoundError.
    """
    root = Path(root)
    out: dict[str, Path] = {}
    for pkg in dict.fromkeys(packages):
        if (root / pkg).is_dir():
            out[pkg] = root / pkg
        elif errors is not None:
            errors[pkg] = f"package {pkg}: no extracted tree at {root / pkg}"
    if not out:
        raise FileNotFoundError(f"no extracted package under {root} (expected {root}/<package>/usr/...); "
                                f"run with fetch=True or extract with `dpkg -x PKG.deb {root}/PKG`")
    return out


def package_version(tree: Path | str, package: str) -> str:
    """A package's version: from this module's marker, else the first line of
    ``usr/share/doc/PKG/changelog.Debian.gz``; "" when neither says."""
    tree = Path(tree)
    marker = tree / MARKER
    if marker.is_file():
        try:
            version = json.loads(marker.read_text()).get("version")
            if version:
                return str(version)
        except (OSError, ValueError):
            pass
    changelog = tree / "usr" / "share" / "doc" / package / "changelog.Debian.gz"
    try:
        with gzip.open(changelog, "rt", errors="replace") as fh:
            first = fh.readline()
        m = re.match(r"\S+\s+\(([^)]+)\)", first)
        if m:
            return m.group(1)
    except OSError:
        pass
    return ""


def licence_path(tree: Path | str, package: str) -> str:
    """``usr/share/doc/PKG/copyright`` (inside the tree) when the package ships it, else ""."""
    rel = f"usr/share/doc/{package}/copyright"
    return rel if (Path(tree) / rel).is_file() else ""
