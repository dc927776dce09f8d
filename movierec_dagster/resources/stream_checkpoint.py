"""Reads a Structured Streaming checkpoint without Spark.

The ingest sensor compares what the source holds with what the checkpoint has taken in.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

import fsspec

COMPACT = ".compact"


@dataclass(frozen=True)
class StreamCheckpoint:
    """A Spark Structured Streaming checkpoint folder, read through fsspec (no Spark).

    Spark writes `offsets/<N>` when it plans batch N and `commits/<N>` once the batch is done, so only
    batches up to the newest commit count. A file source lists each batch's files in `sources/<i>/<N>`;
    every `fileSource.log.compactInterval` batches it writes `<N>.compact` instead, holding every entry
    so far, and may then delete the older files.
    """

    fs: fsspec.AbstractFileSystem
    path: str

    @classmethod
    def at(cls, uri: str, **storage_options) -> "StreamCheckpoint":
        """The checkpoint at `uri`: any URL fsspec understands, or a local path."""
        fs, path = fsspec.core.url_to_fs(uri, **storage_options)
        return cls(fs, path)

    def exists(self) -> bool:
        """Whether a query has started on this folder (its first write is `metadata`)."""
        return self.fs.exists(self._at("metadata"))

    def query_id(self) -> str | None:
        """The id of the query that owns the checkpoint."""
        return json.loads(self._lines(self._at("metadata"))[0]).get("id") if self.exists() else None

    def last_committed_batch(self) -> int | None:
        """The newest batch that completed."""
        return max(self._batch_files("commits"), default=None)

    def committed_files(self, source: int = 0) -> set[str]:
        """The paths (as recorded, e.g. file:// URIs) a file source took in during committed batches."""
        last = self.last_committed_batch()
        if last is None:
            return set()
        folder = f"sources/{source}"
        plain, compacts = self._batch_files(folder), self._batch_files(folder, COMPACT)
        start = max(compacts, default=0)
        files = [path for batch, path in {**plain, **compacts}.items() if batch >= start]
        entries = [json.loads(line) for path in files for line in self._lines(path)[1:]]
        return {entry["path"] for entry in entries if entry["batchId"] <= last}

    def committed_offsets(self, source: int = 0) -> Any | None:
        """Source number `source`'s offset as of the last committed batch, e.g. {"logOffset": 7} for a file source.

        None before the first commit, or when Spark wrote `-` (that source had no offset yet).
        """
        last = self.last_committed_batch()
        if last is None:
            return None
        path = self._at("offsets", str(last))
        version, _metadata, *offsets = self._lines(path)
        if version != "v1":
            raise ValueError(f"{path}: offset log version {version!r}, only v1 is read")
        offset = offsets[source] if source < len(offsets) else "-"
        return None if offset == "-" else json.loads(offset)

    def _at(self, *parts: str) -> str:
        return "/".join([self.path.rstrip("/"), *parts])

    def _lines(self, path: str) -> list[str]:
        return self.fs.cat_file(path).decode().splitlines()

    def _batch_files(self, folder: str, suffix: str = "") -> dict[int, str]:
        """The files of `folder` named `<N><suffix>`, by N; hidden (`.N.crc`) and temp files never match."""
        try:
            paths = self.fs.ls(self._at(folder), detail=False)
        except FileNotFoundError:
            return {}
        name = re.compile("([0-9]+)" + re.escape(suffix))
        files = {}
        for path in paths:
            if match := name.fullmatch(path.rstrip("/").rsplit("/", 1)[-1]):
                files[int(match[1])] = path
        return files
