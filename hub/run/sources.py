"""What a sources folder holds that no connector reads: the files each feed ignores and the folders no feed owns."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from connectors.contract import Connector
from connectors.csv_export import CsvFeedConnector

#: the folders a sources tree may have (one per feed); anything else at the top is unclaimed
FEED_FOLDERS = ("registry", "consent", "houkatsu", "shogai", "kodomo", "jiritsu")
#: the shogai vendor database and SQLite's companion files
SHOGAI_FILES = ("soudan.sqlite", "soudan.sqlite-wal", "soudan.sqlite-shm", "soudan.sqlite-journal")


def _display(path: Path, sources: Path) -> str:
    """A path relative to ``sources`` that prints even when the name is not UTF-8."""
    rel = os.fsencode(path.relative_to(sources))
    return rel.decode("utf-8", "backslashreplace")


def _hidden(path: Path) -> bool:
    return path.name.startswith((".", "~"))


def _json_only(folder: Path) -> set[Path]:
    return {p for p in folder.iterdir() if p.is_file() and p.suffix == ".json"}


def unclaimed_files(sources: Path, connectors: Sequence[Connector]) -> list[str]:
    """Every file (relative name) under ``sources`` that none of ``connectors`` will read, sorted.

    Hidden and editor files (``.x``, ``~x``) are not reported. A mapping file (``*.mapping.toml``)
    in ``houkatsu/`` is configuration, not input.
    """
    claimed: set[Path] = set()
    folders_read: set[Path] = set()
    for connector in connectors:
        if isinstance(connector, CsvFeedConnector):
            claimed |= {f.path for f in connector.files()}
            folders_read.add(connector.folder)
        else:
            folder = getattr(connector, "folder", None)
            if isinstance(folder, Path) and folder.is_dir():
                claimed |= _json_only(folder)
                folders_read.add(folder)
    shogai = sources / "shogai"
    claimed |= {shogai / n for n in SHOGAI_FILES}
    claimed |= set((sources / "houkatsu").glob("*.mapping.toml"))
    out: list[str] = []
    for root, dirs, files in os.walk(sources):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "~")))
        for name in sorted(files):
            path = Path(root) / name
            if _hidden(path) or path in claimed:
                continue
            out.append(_display(path, sources))
    return sorted(out)

