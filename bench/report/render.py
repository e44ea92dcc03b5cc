"""A report as a list of blocks, rendered twice: Markdown (figures linked) and self-contained HTML.

The HTML embeds every PNG as a base64 data URI and links the SVG beside it; its only style is the
inline CSS below, and it has no scripts, so it opens offline in any browser. Inline markup in
text: ``**bold**`` and ```code```.
"""
from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from datasets.cache import atomic_write_bytes

GENERATED_PREFIX = "Generated at "
CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1280px;margin:2em auto;
padding:0 1.5em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.3em}h2{font-size:1.3em;margin-top:2em;
border-bottom:1px solid #eee}h3{font-size:1.1em}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.86em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td.text,th.text{text-align:left}td.text{white-space:normal;min-width:4em}
.scroll{overflow-x:auto;max-width:100%}
caption{caption-side:top;text-align:left;font-size:.95em;color:#444;padding:.3em 0;white-space:normal}
td.better{background:#dff3df;font-weight:bold;color:#135c13}td.worse{background:#fadcdc;font-weight:bold;
color:#8a1414}td.differs{background:#fff3cd;font-weight:bold}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#444;margin-top:.3em}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:.8em;overflow-x:auto;font-size:.85em}
code{background:#f3f3f3;padding:0 .2em}.generated{color:#777;font-size:.85em}
""".strip()


@dataclass(frozen=True)
class Cell:
    """A table cell; ``mark`` is '', 'better', 'worse' or 'differs' (bold in Markdown, coloured in HTML)."""

    text: str
    mark: str = ""


@dataclass
class Heading:
    """A section heading (level 1..3)."""

    level: int
    text: str


@dataclass
class Para:
    """A paragraph of text."""

    text: str


@dataclass
class Bullets:
    """An unordered list."""

    items: list[str]


@dataclass
class Table:
    """A table with a caption; the first ``text_columns`` columns are left-aligned."""

    columns: list[str]
    rows: list[list[Union[str, Cell]]]
    caption: str = ""
    text_columns: int = 1


@dataclass
class FigureBlock:
    """A figure: the PNG shown, the SVG linked; paths relative to the report's folder."""

    png: str
    svg: str
    caption: str


@dataclass
class Pre:
    """A preformatted block (the environment)."""

    text: str


Block = Union[Heading, Para, Bullets, Table, FigureBlock, Pre]


@dataclass
class Document:
    """A report: title, the one 'generated at' line, and its blocks."""

    title: str
    generated: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        """Append blocks."""
        self.blocks.extend(blocks)


def pct(x: float | None, missing: str = "-") -> str:
    """A 0..1 rate as a percentage with one decimal (``missing`` when there is none)."""
    return missing if x is None or not math.isfinite(float(x)) else f"{100 * x:.1f}"


def num(x: float | None, fmt: str = ".3g", missing: str = "-") -> str:
    """A number in ``fmt`` (``missing`` when there is none or it is not finite)."""
    return missing if x is None or not math.isfinite(float(x)) else format(float(x), fmt)


def count(x: float | None, missing: str = "-") -> str:
    """A count, rounded, with thousands separators (``missing`` when there is none)."""
    return missing if x is None or not math.isfinite(float(x)) else f"{int(round(float(x))):,}"


def pipe_table(header: list[str], align: list[str], rows: list[list[str]]) -> str:
    """A bare Markdown pipe table, cells as given; ``align`` is 'l' or 'r' per column."""
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"
    sep = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    return "\n".join([row(header), sep, *(row(r) for r in rows)])


def _cell(value: Union[str, Cell]) -> Cell:
    return value if isinstance(value, Cell) else Cell(str(value))


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(doc: Document) -> str:
    """The document as Markdown (GitHub flavour); figures link their PNG and SVG files."""
    out = [f"# {doc.title}", "", f"{GENERATED_PREFIX}{doc.generated}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += ["#" * (b.level + 1) + " " + b.text, ""]
        elif isinstance(b, Para):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            if b.caption:
                out += [f"*{b.caption}*", ""]
            out.append("| " + " | ".join(_md_escape(c) for c in b.columns) + " |")
            out.append("|" + "|".join(":---" if i < b.text_columns else "---:" for i in range(len(b.columns))) + "|")
            for row in b.rows:
                cells = [_cell(v) for v in row]
                out.append("| " + " | ".join(_md_escape(f"**{c.text}**" if c.mark and c.text else c.text)
                                             for c in cells) + " |")
            out.append("")
        elif isinstance(b, FigureBlock):
            out += [f"![{b.caption}]({b.png})", "", f"{b.caption} ([SVG]({b.svg}))", ""]
        elif isinstance(b, Pre):
            out += ["```", b.text, "```", ""]
    return "\n".join(out).rstrip() + "\n"


def _inline(text: str) -> str:
    s = html.escape(text, quote=False)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


def _class(name: str) -> str:
    return f' class="{name}"' if name else ""


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(doc: Document, root: Path) -> str:
    """The document as one self-contained HTML page; PNGs are read from ``root`` and embedded."""
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(doc.title)}</title>", f"<style>\n{CSS}\n</style>", "</head>", "<body>",
           f"<h1>{html.escape(doc.title)}</h1>",
           f'<p class="generated">{html.escape(GENERATED_PREFIX + doc.generated)}</p>']
    for b in doc.blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level + 1}>{_inline(b.text)}</h{b.level + 1}>")
        elif isinstance(b, Para):
            out.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            rows = ['<div class="scroll"><table>']
            if b.caption:
                rows.append(f"<caption>{_inline(b.caption)}</caption>")
            rows.append("<thead><tr>" + "".join(
                f"<th{_class('text' if i < b.text_columns else '')}>{html.escape(c)}</th>"
                for i, c in enumerate(b.columns)) + "</tr></thead><tbody>")
            for row in b.rows:
                cells = []
                for i, value in enumerate(row):
                    c = _cell(value)
                    cls = " ".join(x for x in ("text" if i < b.text_columns else "", c.mark) if x)
                    cells.append(f"<td{_class(cls)}>{html.escape(c.text)}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
            rows.append("</tbody></table></div>")
            out.append("\n".join(rows))
        elif isinstance(b, FigureBlock):
            out.append(f'<figure><img src="{_data_uri(root / b.png)}" alt="{html.escape(b.caption)}">'
                       f'<figcaption>{_inline(b.caption)} (<a href="{html.escape(b.svg)}">SVG</a>, '
                       f'<a href="{html.escape(b.png)}">PNG</a>)</figcaption></figure>')
        elif isinstance(b, Pre):
            out.append(f"<pre>{html.escape(b.text)}</pre>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


def write_document(doc: Document, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Write ``stem``.md and ``stem``.html into ``out_dir``; returns both paths."""
    md, page = out_dir / f"{stem}.md", out_dir / f"{stem}.html"
    atomic_write_bytes(md, to_markdown(doc).encode("utf-8"))
    atomic_write_bytes(page, to_html(doc, out_dir).encode("utf-8"))
    return md, page
