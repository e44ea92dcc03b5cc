"""`bench readme` refuses what it cannot read instead of skipping it (issue 31): near-miss markers,
options of the wrong type or name, and selections that match nothing in the run, on check and --write."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.report.readme_tables import check_tables, write_tables

REPO = Path(__file__).resolve().parents[1]
RUN = f"{REPO}/reports/debian-music"
SCALE = f"{REPO}/reports/scale"
MADE_UP = "| method | 1 s |\n|:--|--:|\n| flowhash | 99.9 |"


def _markdown(tmp_path: Path, marker: str, end: str = "<!-- /bench-table -->") -> Path:
    md = tmp_path / "README.md"
    md.write_text(f"# results\n\n{marker}\n{MADE_UP}\n{end}\n")
    return md


@pytest.mark.parametrize("marker, end, line, message", [
    (f"<!--  bench-table budget run={RUN} budget_ms=1.0 -->", None, 3,
     f"near-miss marker; write it as '<!-- bench-table budget run={RUN} budget_ms=1.0 -->'"),
    (f"<!-- Bench-Table budget run={RUN} -->", None, 3, f"write it as '<!-- bench-table budget run={RUN} -->'"),
    (f"<!-- bench-table budget  run={RUN} -->", None, 3, f"write it as '<!-- bench-table budget run={RUN} -->'"),
    (f"<!-- bench-table budget run={RUN} -->", "<!--  /bench-table -->", 7, "write it as '<!-- /bench-table -->'"),
    (f"<!-- bench_table budget run={RUN} -->", None, 3, f"write it as '<!-- bench-table budget run={RUN} -->'"),
])
def test_a_near_miss_marker_is_an_error_naming_the_line(tmp_path: Path, marker: str, end: str | None, line: int,
                                                        message: str) -> None:
    md = _markdown(tmp_path, marker, end or "<!-- /bench-table -->")
    for action in (check_tables, write_tables):
        with pytest.raises(ValueError, match=f"^{md}:{line}: ") as err:
            action(md)
        assert message in str(err.value)
    assert MADE_UP in md.read_text()


def _both_refuse(md: Path, kind: str, message: str) -> None:
    """The check and --write both refuse ``md``, naming its line 3, the table kind and ``message``."""
    for action in (check_tables, write_tables):
        with pytest.raises(ValueError, match=f"^{md}:3: bench-table {kind}: ") as err:
            action(md)
        assert message in str(err.value)


@pytest.mark.parametrize("marker, message", [
    (f"<!-- bench-table budget run={RUN} budget_ms=abc -->", "option budget_ms=abc: expected a positive number"),
    (f"<!-- bench-table scale-budget run={SCALE} n=1.5 -->", "option n=1.5: expected a positive integer"),
    (f"<!-- bench-table budget run={RUN} budget=1.0 -->", "unknown option 'budget'; allowed: run, budget_ms"),
    (f"<!-- bench-table e2e run={RUN} -->", "needs methods=... (comma-separated method names)"),
    (f"<!-- bench-table budget run={RUN} budget_ms=1 budget_ms=2 -->", "option budget_ms given twice"),
])
def test_a_bad_option_names_the_option_the_value_and_the_expected_type(tmp_path: Path, marker: str,
                                                                       message: str) -> None:
    md = _markdown(tmp_path, marker)
    _both_refuse(md, marker.split()[2], message)


@pytest.mark.parametrize("marker, message", [
    (f"<!-- bench-table balance run={RUN} methods=nosuch -->",
     f"methods=nosuch: nosuch not among the methods with buckets of {RUN}; "
     "available: binary-hash, binary-index, flowhash, "),
    (f"<!-- bench-table e2e run={RUN} methods=flowhash,nosuch -->",
     f"methods=flowhash,nosuch: nosuch not among the methods of {RUN}; available: exhaustive, "),
    (f"<!-- bench-table paired run={RUN} against=nosuch -->",
     f"against=nosuch: nosuch not among the methods of {RUN}; available: exhaustive, "),
    (f"<!-- bench-table scale-speedup run={SCALE} sizes=123 -->",
     f"sizes=123: 123 not among the sizes of {SCALE}; available: "),
])
def test_a_selection_that_matches_nothing_names_what_there_is(tmp_path: Path, marker: str, message: str) -> None:
    md = _markdown(tmp_path, marker)
    _both_refuse(md, marker.split()[2], message)
    assert MADE_UP in md.read_text()
