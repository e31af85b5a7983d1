"""Command lines from config dataclasses: `--<group>.<field> value` for each field
(`python -m learners.ppo --env-id CartPole-v1 --ppo.num_envs 8 --fabric.strategy ddp`)."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any


def _parser_for(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):      # `float | None`
        inner = next(a for a in typing.get_args(annotation) if a is not type(None))
        return lambda text: None if text.lower() == "none" else _parser_for(inner)(text)
    if annotation is bool:
        return lambda text: {"true": True, "false": False}[text.lower()]
    return annotation


def parse_configs(description: str, argv: list[str] | None = None, **groups: type) -> tuple[argparse.Namespace, dict]:
    """Parse `--env-id` plus every field of each config dataclass in `groups` (name -> class).
    Returns (namespace, {name: config instance})."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--env-id", default=None)
    for group, cls in groups.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            parser.add_argument(f"--{group}.{f.name}", type=_parser_for(hints[f.name]), default=default,
                                dest=f"{group}.{f.name}", help=f"default: {default}")
    args = parser.parse_args(argv)
    configs = {group: cls(**{f.name: getattr(args, f"{group}.{f.name}") for f in dataclasses.fields(cls)})
               for group, cls in groups.items()}
    return args, configs
