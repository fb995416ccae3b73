"""A tiny name -> object registry whose unknown-name error lists the valid names."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to variants (estimators, weightings, rewards, balancers, judges)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        if name not in self._items:
            raise KeyError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(sorted(self._items))}"
            )
        return self._items[name]

    def check(self, name: str, key: str) -> str:
        """``name`` if registered, else a ValueError for config key ``key`` that lists the valid names."""
        if name not in self._items:
            raise ValueError(f"{key} {name!r} is unknown; valid names: {', '.join(sorted(self._items))}")
        return name

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
