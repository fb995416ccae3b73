"""A tiny name -> object registry whose unknown-name error lists the valid names.

Implementations that live in other modules are declared by name (``lazy={"fast": "moalign.fastgen"}``,
the way Python entry points and transformers' auto classes do it) and imported on first use. So the
module that holds a registry never imports its implementations at its bottom, and an implementation
module that imports the registry's module makes no import circle.
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to variants (estimators, weightings, rewards, balancers, judges)."""

    def __init__(self, kind: str, lazy: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy = dict(lazy or {})  # name -> module that registers it when imported

    def _load(self, name: object) -> None:
        if name not in self._items and name in self._lazy:
            importlib.import_module(self._lazy[name])
            if name not in self._items:
                raise KeyError(f"{self.kind} {name!r}: importing {self._lazy[name]} did not register it")

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        self._load(name)
        if name not in self._items:
            raise KeyError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            )
        return self._items[name]

    def check(self, name: str, key: str) -> str:
        """``name`` if registered, else a ValueError for config key ``key`` that lists the valid names."""
        if name not in self._items and name not in self._lazy:
            raise ValueError(f"{key} {name!r} is unknown; valid names: {', '.join(self.names())}")
        return name

    def names(self) -> list[str]:
        return sorted(set(self._items) | set(self._lazy))

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._lazy
