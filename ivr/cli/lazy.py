"""Commands imported when they are used: `ivr --version` or `ivr compliance` does not load the
server, the recordings archive, the password checker or the script linter.

`LazyCommands` stands in for a click group's `commands` dict: names map to "module:attribute"
and the module is imported the first time the command is looked up (running it, its --help,
or listing the group's commands, which imports them all).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

import click


class LazyCommands(dict[str, click.Command]):
    """A group's commands, some of them named by where they live until first used."""

    def __init__(self, targets: Mapping[str, str]) -> None:
        super().__init__()
        self._targets = dict(targets)

    def _load(self, name: str) -> click.Command:
        if not dict.__contains__(self, name):
            module, attribute = self._targets[name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self._targets[name]} is not a click command")
            dict.__setitem__(self, name, command)
        return dict.__getitem__(self, name)

    def __contains__(self, name: object) -> bool:
        return name in self._targets or dict.__contains__(self, name)

    def __iter__(self) -> Iterator[str]:
        yield from dict.__iter__(self)
        yield from (name for name in self._targets if not dict.__contains__(self, name))

    def __len__(self) -> int:
        return len(list(iter(self)))

    def __getitem__(self, name: str) -> click.Command:
        if name not in self:
            raise KeyError(name)
        return self._load(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self._load(name) if name in self else default

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(self)

    def values(self) -> list[click.Command]:  # type: ignore[override]
        return [self[name] for name in self]

    def items(self) -> list[tuple[str, click.Command]]:  # type: ignore[override]
        return [(name, self[name]) for name in self]
