"""dev.py, the bootstrap behind the README's two commands: its warning about the disk the first install needs."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _dev():
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_disk_too_small_for_the_first_install_is_named_before_pip_runs_out(tmp_path):
    dev = _dev()
    free = shutil.disk_usage(tmp_path).free
    warning = dev.disk_warning(tmp_path, need=free + 1024**4)
    assert warning is not None
    said = float(warning.split(" GB free")[0].rsplit(" ", 1)[1])
    assert str(tmp_path) in warning and abs(said - free / 1024**3) < 1  # other writers may move it a little
    assert dev.disk_warning(tmp_path, need=0) is None


def test_no_warning_once_the_environment_is_built(tmp_path):
    dev = _dev()
    (tmp_path / ".tox" / dev.ENV).mkdir(parents=True)
    assert dev.disk_warning(tmp_path, need=shutil.disk_usage(tmp_path).free + 1024**4) is None
