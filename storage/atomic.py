"""Atomic file writes: every file the project writes (checkpoints, run folders, datasets,
benchmark results, tables, figures) goes through a temporary file in the target's folder that is
renamed onto the target once complete, so a killed process leaves the old file or the new one,
never half of one.

    with atomic_path(path) as tmp:      # any writer that takes a path
        frame.to_parquet(tmp)
    write_json(path, {"sharpe": np.float64(1.2), "psr": float("nan")})   # strict JSON: NaN -> null
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` (same folder, same suffix, so writers that pick a format
    by suffix still do) that replaces `path` when the block ends, or is removed if it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """`text` at `path`, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def json_ready(value: Any) -> Any:
    """JSON-able form of numpy scalars and arrays; NaN and infinities become null."""
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path: str | Path, content: Any, indent: int | None = 2) -> None:
    """`content` as strict JSON (`json_ready`: numpy values converted, NaN as null), atomically."""
    write_text(path, json.dumps(json_ready(content), indent=indent, allow_nan=False))
