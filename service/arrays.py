"""Flat dicts of numpy arrays on disk, unpickling nothing.

`write_arrays` / `read_arrays`: one file (a JSON header name -> dtype, shape, offset, then the
raw bytes), written atomically by rename: for files written once (the artifact's stream state).

`StateFile`: a state rewritten after every bar. A rename per write costs milliseconds on a
journaling disk, so the state goes into two slots in turn (`<name>.0`, `<name>.1`), each
prefixed by its sequence number, length and Adler-32 checksum: a write cut short (the process killed
mid-way) spoils only the slot being written, and `read` returns the newest intact slot, the
state of the last bar fully written. Like a rename without fsync, this survives a killed
process, not a lost machine.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from storage.atomic import atomic_path

MAGIC = b"HMARLARR"
SLOT = struct.Struct("<8sQQI")           # magic, sequence number, payload length, Adler-32 of the payload


def pack(arrays: dict[str, np.ndarray], headers: dict | None = None) -> bytes:
    """Header and raw bytes of `arrays` (numeric arrays only); `headers` caches the encoded
    header of each layout (names, dtypes, shapes)."""
    values = [np.asarray(v) for v in arrays.values()]
    values = [v if v.flags.c_contiguous else np.ascontiguousarray(v) for v in values]   # (0-d stays 0-d)
    layout = tuple((name, v.dtype.str, v.shape) for name, v in zip(arrays, values))
    encoded = None if headers is None else headers.get(layout)
    if encoded is None:
        header, offset = {}, 0
        for name, dtype, shape in layout:
            if np.dtype(dtype).hasobject:
                raise TypeError(f"array '{name}' holds Python objects; only numeric arrays are stored")
            header[name] = [dtype, list(shape), offset]
            offset += int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        encoded = json.dumps(header).encode()
        encoded = MAGIC + struct.pack("<Q", len(encoded)) + encoded
        if headers is not None:
            headers[layout] = encoded
    return b"".join([encoded, *(v.tobytes() for v in values)])


def unpack(data: bytes, where: str) -> dict[str, np.ndarray]:
    """What `pack` packed (ValueError naming `where` if it is not such bytes or is cut short)."""
    if data[:len(MAGIC)] != MAGIC:
        raise ValueError(f"{where}: not an array file (no {MAGIC!r} header)")
    size = struct.unpack("<Q", data[len(MAGIC):len(MAGIC) + 8])[0]
    start = len(MAGIC) + 8 + size
    header = json.loads(data[len(MAGIC) + 8:start])
    arrays = {}
    for name, (dtype, shape, offset) in header.items():
        count = int(np.prod(shape, dtype=np.int64))
        if start + offset + count * np.dtype(dtype).itemsize > len(data):
            raise ValueError(f"{where}: array '{name}' is cut short ({len(data)} bytes)")
        arrays[name] = np.frombuffer(data, dtype=dtype, count=count, offset=start + offset).reshape(shape).copy()
    return arrays


def write_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """`arrays` at `path`, atomically (the old file or the new one, never half of one)."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(pack(arrays))


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    return unpack(Path(path).read_bytes(), str(path))


class StateFile:
    """A state written in turn into two checksummed slots (see module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.slots = [self.path.with_name(f"{self.path.name}.{k}") for k in range(2)]
        self._fds: list[int] = []
        self._headers: dict = {}
        intact = self._intact()
        self.seq = max(intact)[0] if intact else -1

    def exists(self) -> bool:
        return self.seq >= 0

    def write(self, arrays: dict[str, np.ndarray]) -> None:
        """The state after this bar, into the older slot."""
        if not self._fds:
            self._fds = [os.open(slot, os.O_RDWR | os.O_CREAT, 0o644) for slot in self.slots]
        payload = pack(arrays, self._headers)
        seq = self.seq + 1
        header = SLOT.pack(MAGIC, seq, len(payload), zlib.adler32(payload))
        written = os.pwritev(self._fds[seq % 2], [header, payload], 0)
        if written != SLOT.size + len(payload):
            raise OSError(f"{self.slots[seq % 2]}: wrote {written} of {SLOT.size + len(payload)} bytes (disk full?)")
        self.seq = seq

    def read(self) -> dict[str, np.ndarray]:
        """The newest intact slot's arrays (FileNotFoundError when neither slot is intact)."""
        intact = self._intact()
        if not intact:
            raise FileNotFoundError(f"{self.slots[0]}, {self.slots[1]}: no intact state")
        seq, slot, payload = max(intact)
        self.seq = seq
        return unpack(payload, str(slot))

    def _intact(self) -> list[tuple[int, Path, bytes]]:
        found = []
        for slot in self.slots:
            if not slot.exists():
                continue
            data = slot.read_bytes()
            if len(data) < SLOT.size:
                continue
            magic, seq, size, crc = SLOT.unpack(data[:SLOT.size])
            payload = data[SLOT.size:SLOT.size + size]
            if magic == MAGIC and len(payload) == size and zlib.adler32(payload) == crc:
                found.append((seq, slot, payload))
        return found

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
