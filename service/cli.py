"""`key=value` command lines (as hydra's) read into a dataclass, without hydra's output folders:
a misspelled key or a value of the wrong type fails naming it."""

from __future__ import annotations

import sys
from typing import Any

from service.artifact import typed


def parse_command_line(schema: type, argv: list[str], program: str) -> Any:
    """`schema` from `argv` ("key=value" items; --help prints the schema's docstring and fields)."""
    if any(a in ("-h", "--help") for a in argv):
        print(f"python -m {program} " + " ".join(f"{name}=..." for name in schema.__dataclass_fields__))
        print(schema.__doc__)
        sys.exit(0)
    pairs = {}
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or not key:
            sys.exit(f"{program}: '{item}' is not key=value")
        if key not in schema.__dataclass_fields__:
            sys.exit(f"{program}: unknown key '{key}' (keys: {', '.join(schema.__dataclass_fields__)})")
        pairs[key] = value
    try:
        return typed(schema, pairs, f"{program}'s command line")
    except ValueError as error:
        sys.exit(f"{program}: {error}")
