"""The README's results tables agree number for number with the committed runs they name, and the
check that says so fails when a number is changed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.report.readme_tables import check_tables, documents, find_blocks, write_tables

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RESULTS, SCALING = REPO / "docs" / "results.md", REPO / "docs" / "scaling.md"


def test_every_document_s_tables_agree_with_the_committed_runs_by_the_readme_command() -> None:
    docs = documents(REPO)
    assert docs[0] == README and {RESULTS, SCALING} <= set(docs)
    kinds = {b.kind for doc in docs for b in find_blocks(doc.read_text().splitlines(), str(doc))}
    assert kinds >= {"budget", "snr", "paired", "speedup", "e2e", "ablation", "balance",
                     "scale-target", "scale-speedup", "scale-budget", "ranking"}
    # the command runs check_tables on each document: one pass over the committed runs serves both claims
    out = subprocess.run([sys.executable, "-m", "bench", "readme"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for doc in docs:
        assert f"{doc}: every marked table agrees with its run" in out.stdout, out.stdout[-2000:]


@pytest.mark.parametrize("doc, kind", [(RESULTS, "budget"), (SCALING, "scale-target")])
def test_a_changed_number_is_found_and_written_back(tmp_path: Path, doc: Path, kind: str) -> None:
    lines = doc.read_text().splitlines()
    block = next(b for b in find_blocks(lines, str(doc)) if b.kind == kind)
    table = lines[block.start + 1:block.end]
    cells = table[2].split(" | ")  # header, separator, then the first data row
    cells[1] = cells[1].replace(cells[1].split()[0], f"{float(cells[1].split()[0]) + 0.1:.1f}", 1)
    table[2] = " | ".join(cells)
    marker = lines[block.start].replace(" run=../reports/", f" run={REPO}/reports/")  # still the committed run
    copy = tmp_path / "README.md"
    copy.write_text("\n".join(["# results", "", marker, *table, lines[block.end]]) + "\n")
    [problem] = check_tables(copy)
    assert f"bench-table {kind}" in problem and "line 3" in problem
    assert write_tables(copy) == 1 and check_tables(copy) == []


@pytest.mark.parametrize("kind, run, message", [
    ("scale-target", "reports/debian-music", "not 'scale'"),
    ("budget", "reports/scale", "is a scaling run"),
])
def test_a_table_of_the_wrong_kind_of_run_is_refused(tmp_path: Path, kind: str, run: str, message: str) -> None:
    md = tmp_path / "x.md"
    md.write_text(f"<!-- bench-table {kind} run={REPO}/{run} -->\n| a |\n<!-- /bench-table -->\n")
    with pytest.raises(ValueError, match=message):
        check_tables(md)


@pytest.mark.parametrize("marker, message", [
    ("<!-- bench-table budget -->", "needs run=PATH"),
    ("<!-- bench-table histogram run=x -->", "unknown table kind 'histogram'"),
    ("<!-- bench-table budget run=x", "malformed marker"),
])
def test_bad_markers_name_the_line(tmp_path: Path, marker: str, message: str) -> None:
    md = tmp_path / "x.md"
    md.write_text(f"text\n{marker}\n| a |\n<!-- /bench-table -->\n")
    with pytest.raises(ValueError, match=message) as err:
        check_tables(md)
    assert f"{md}:2" in str(err.value)


def test_the_ranking_orders_every_method_by_its_latency_at_the_target(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text(f"<!-- bench-table ranking run={REPO}/reports/debian-music share=0.8 -->\n<!-- /bench-table -->\n")
    assert write_tables(md) == 1
    rows = [line.split(" | ") for line in md.read_text().splitlines()[3:-1]]
    ranked = [r for r in rows if r[0].lstrip("| ") != "-"]
    ms = [float(r[2]) for r in ranked]
    assert ms == sorted(ms) and [int(r[0].lstrip("| ")) for r in ranked] == list(range(1, len(ranked) + 1))
    assert any(r[1] == "flowhash" and r[4].strip(" |") == "" for r in ranked)  # FlowHash in its place, no ratio
    assert {r[1] for r in rows} >= {"exhaustive", "pca-sign", "hnsw"}
