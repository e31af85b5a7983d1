"""The decision log: one JSON line per decision in evaluation, the audit trail of every trade.

Each line holds the bar's timestamp, regime probabilities, the meta-controller's allocations and
risk appetite, the messages exchanged, the instrument signals, target and executed weights, and
the risk limits that bound. Lines go to `<path>.partial` as they come and the file is renamed to
`<path>` when the log closes, so a complete log is never confused with an interrupted one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from storage.atomic import json_ready


class DecisionLog:
    """Append-only JSONL writer; use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._file = self._partial.open("w")
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(json_ready(record)) + "\n")
        self.count += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            os.replace(self._partial, self.path)

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self._file.close()           # keep the .partial file for inspection


def read_decision_log(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open() as file:
        return [json.loads(line) for line in file]
