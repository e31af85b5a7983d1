"""The audit log: append-only JSON lines, each record carrying the hash of the one before, so
that an edited, removed or reordered record breaks the chain where it happened.

    {"hash": sha256("<seq>:<prev>:<canonical record>"), "prev": "<hash of record 6>", "record": {...}, "seq": 7}

The first record's "prev" is 64 zeros. Canonical JSON: sorted keys, no spaces, NaN as null
(`storage.atomic.json_ready`), so a record re-read and re-encoded gives the bytes it was hashed as.

    python -m service.audit <path>     # verify: exit 0 and the head hash, or exit 1 naming the first bad line
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from storage.atomic import json_ready

GENESIS = "0" * 64


def canonical(content: Any) -> str:
    """Sorted keys, no spaces; numpy values and NaN (as null) converted when there are any."""
    try:
        return json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(json_ready(content), sort_keys=True, separators=(",", ":"), allow_nan=False)


def chain_hash(seq: int, prev: str, body: str) -> str:
    """The hash of record `seq` whose canonical JSON is `body`, chained to `prev`."""
    return hashlib.sha256(f"{seq}:{prev}:{body}".encode()).hexdigest()


def last_line(path: Path) -> str | None:
    """The file's last line, read from its end (None for an empty or missing file)."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open("rb") as file:
        file.seek(0, os.SEEK_END)
        end = position = file.tell()
        while position > 0:
            step = min(4096, position)
            position -= step
            file.seek(position)
            if b"\n" in file.read(end - position).rstrip(b"\n"):
                break
        file.seek(position)
        return file.read().rstrip(b"\n").split(b"\n")[-1].decode()


class AuditLog:
    """Appends chained records to `path` (created if missing), flushing each one."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tail = last_line(self.path)
        if tail is None:
            self.seq, self.head, self._last = -1, GENESIS, None
        else:
            entry = json.loads(tail)
            self.seq, self.head, self._last = entry["seq"], entry["hash"], canonical(entry["record"])
        self._file = self.path.open("a")

    def append(self, record: dict) -> str:
        """Write `record` as the next link; returns its hash."""
        body = canonical(record)
        seq = self.seq + 1
        digest = chain_hash(seq, self.head, body)
        self._file.write(f'{{"hash":"{digest}","prev":"{self.head}","record":{body},"seq":{seq}}}\n')
        self._file.flush()
        self.seq, self.head, self._last = seq, digest, body
        return digest

    @property
    def last(self) -> dict | None:
        """The last record (None in an empty log)."""
        return None if self._last is None else json.loads(self._last)

    def close(self) -> None:
        self._file.close()


def verify(path: str | Path) -> tuple[int, str]:
    """(records, head hash) of an intact log; ValueError naming the first line that breaks the
    chain and how (edited, removed or reordered)."""
    path = Path(path)
    head, count = GENESIS, 0
    with path.open() as file:
        for number, line in enumerate(file, start=1):
            try:
                entry = json.loads(line)
                seq, prev, digest, record = entry["seq"], entry["prev"], entry["hash"], entry["record"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{path}:{number}: not an audit record") from None
            if seq != count:
                raise ValueError(f"{path}:{number}: record seq {seq} where {count} was due "
                                 f"(a record was removed or the records were reordered)")
            if prev != head:
                raise ValueError(f"{path}:{number}: its previous hash is not line {number - 1}'s "
                                 f"(a record was removed, reordered or edited before it)")
            if chain_hash(seq, prev, canonical(record)) != digest:
                raise ValueError(f"{path}:{number}: the record does not match its hash (edited)")
            head, count = digest, count + 1
    return count, head


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m service.audit <audit.jsonl>")
    try:
        count, head = verify(sys.argv[1])
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"service.audit: BROKEN: {error}")
    print(f"service.audit: intact, {count} records, head {head}")


if __name__ == "__main__":
    main()
