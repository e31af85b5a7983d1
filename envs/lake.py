"""The data lake: plain layers of files on disk, each entry keyed by a content hash.

    <root>/raw/        the user's files are never copied or modified: raw is where they are
    <root>/clean/<name>-<key>/      validated, aligned MarketData as Parquet (envs.io)
    <root>/features/<name>-<key>/   feature tensors as Parquet (features.pipeline)
    <root>/walks/<name>-<key>/      a baseline's walk on a fresh test universe (eval.universes)

A key hashes everything an entry depends on (config values, source file sizes and times, code
schema version), so a rerun with the same inputs reuses the entry and any change rebuilds it.
Entries are written to a temporary folder and renamed into place, so a killed run never leaves
a half-written entry behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

LAYERS = ("clean", "features", "walks")
DEFAULT_ROOT = Path(os.environ.get("HMARL_DATA_LAKE", "data_lake"))


def content_hash(*parts: Any, length: int = 16) -> str:
    """Stable hex digest of JSON-able parts (dataclasses, dicts, lists, paths, numbers)."""
    def default(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        if isinstance(obj, Path):
            return str(obj)
        if hasattr(obj, "tolist"):
            return obj.tolist()
        if hasattr(obj, "items"):        # omegaconf DictConfig and other mappings
            return dict(obj.items())
        if hasattr(obj, "__iter__"):
            return list(obj)
        raise TypeError(f"cannot hash {type(obj).__name__}")

    text = json.dumps(parts, default=default, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """What identifies a source file's version cheaply: its path, size and modification time."""
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@dataclasses.dataclass(frozen=True)
class DataLake:
    """Locates and atomically builds keyed entries under `root`."""

    root: Path = DEFAULT_ROOT

    def entry(self, layer: str, name: str, key: str) -> Path:
        if layer not in LAYERS:
            raise ValueError(f"unknown data-lake layer '{layer}' (one of {LAYERS})")
        return Path(self.root) / layer / f"{name}-{key}"

    def get_or_build(self, layer: str, name: str, key: str, build: Callable[[Path], None]) -> Path:
        """The entry's folder, calling `build(tmp_folder)` to create it first if missing."""
        target = self.entry(layer, name, key)
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            build(tmp)
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():      # another process may have won the race: keep its entry
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target
