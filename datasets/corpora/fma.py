"""`fma` corpus: the Free Music Archive layout (fma_small/medium/large/full + fma_metadata)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from datasets.protocol import Protocol
from datasets.splits import DEFAULT_FRACTIONS

from .corpus import Corpus

FMA_SIZES = ("small", "medium", "large", "full")
SUBSET_ORDER = {"small": 0, "medium": 1, "large": 2}

LAYOUT_HELP = """expected layout (as distributed by the FMA project):
  ROOT/fma_metadata/tracks.csv            two header rows, index column track_id
  ROOT/fma_SIZE/000/000002.mp3            audio, grouped by the first 3 digits of the id
with SIZE one of small, medium, large, full"""


def tracks_csv_path(root: Path) -> Path:
    """Where tracks.csv lives in an FMA tree (fma_metadata/ or the root itself)."""
    for cand in (root / "fma_metadata" / "tracks.csv", root / "tracks.csv"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"fma corpus: no tracks.csv under {root}\n{LAYOUT_HELP}")


def read_track_table(path: Path) -> pd.DataFrame:
    """Read FMA's tracks.csv (two header rows) to a frame with track_id, subset, genre, title."""
    try:
        raw = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
    except Exception as exc:
        raise ValueError(f"fma corpus: cannot parse {path} ({exc})\n{LAYOUT_HELP}") from exc
    wanted = {("set", "subset"): "subset", ("track", "genre_top"): "genre",
              ("track", "title"): "title", ("artist", "name"): "artist"}
    if ("set", "subset") not in raw.columns:
        raise ValueError(f"fma corpus: {path} lacks the column ('set', 'subset')\n{LAYOUT_HELP}")
    table = pd.DataFrame({name: raw[col] if col in raw.columns else "" for col, name in wanted.items()})
    table.index = table.index.astype(int)
    table.index.name = "track_id"
    return table.fillna("")


def audio_path(root: Path, size: str, track_id: int) -> Path:
    """FMA's path scheme: fma_SIZE/123/123456.mp3."""
    name = f"{track_id:06d}"
    return root / f"fma_{size}" / name[:3] / f"{name}.mp3"


class FMACorpus(Corpus):
    """Tracks of one FMA subset found on disk; ids are FMA's six-digit track ids."""

    name = "fma"

    def __init__(self, root: Path | str, size: str = "small", protocol: Protocol = Protocol(),
                 split_fractions: Mapping[str, float] = DEFAULT_FRACTIONS) -> None:
        super().__init__(protocol, split_fractions)
        if size not in FMA_SIZES:
            raise ValueError(f"fma corpus: size {size!r} is not one of {list(FMA_SIZES)}")
        self.root = Path(root).expanduser()
        self.size = size
        if not self.root.is_dir():
            raise FileNotFoundError(f"fma corpus: {self.root} is not a directory\n{LAYOUT_HELP}")
        audio_dir = self.root / f"fma_{size}"
        if not audio_dir.is_dir():
            raise FileNotFoundError(f"fma corpus: {audio_dir} is missing\n{LAYOUT_HELP}")
        table = read_track_table(tracks_csv_path(self.root))
        if size != "full":
            level = SUBSET_ORDER[size]
            table = table[table["subset"].map(lambda s: SUBSET_ORDER.get(s, 99) <= level)]
        for track_id, row in table.iterrows():
            path = audio_path(self.root, size, int(track_id))
            if path.is_file():
                meta = {k: str(row[k]) for k in ("genre", "title", "artist")}
                self._add_file(f"{int(track_id):06d}", path, meta)
        if not self._tracks:
            raise ValueError(f"fma corpus: tracks.csv lists no audio present under {audio_dir}"
                             f" ({len(self.skipped)} unreadable)\n{LAYOUT_HELP}")

    def identity(self) -> dict:
        """Base identity plus the FMA subset."""
        return {**super().identity(), "root": str(self.root.resolve()), "size": self.size}
