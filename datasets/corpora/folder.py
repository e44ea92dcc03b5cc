"""`folder` corpus: any directory tree of audio files soundfile can read."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from datasets.audio_io import find_audio_files
from datasets.protocol import Protocol
from datasets.splits import DEFAULT_FRACTIONS

from .corpus import Corpus


class FolderCorpus(Corpus):
    """Every audio file under ``root`` is a track; its id is the path relative to ``root``.

    Files are downmixed to mono and resampled to the protocol rate when loaded; unreadable
    files are skipped with a warning and listed in ``skipped``.
    """

    name = "folder"

    def __init__(self, root: Path | str, protocol: Protocol = Protocol(),
                 split_fractions: Mapping[str, float] = DEFAULT_FRACTIONS) -> None:
        super().__init__(protocol, split_fractions)
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"folder corpus: {self.root} is not a directory "
                                    "(give --corpus-path a folder of audio files)")
        for path in find_audio_files(self.root):
            self._add_file(path.relative_to(self.root).as_posix(), path)
        if not self._tracks:
            raise ValueError(f"folder corpus: no readable audio files under {self.root} "
                             f"({len(self.skipped)} unreadable)")

    def identity(self) -> dict:
        """Base identity plus the folder it reads."""
        return {**super().identity(), "root": str(self.root.resolve())}
