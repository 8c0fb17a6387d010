"""Named tables that fail loudly: the one shape of the registries in edge_vision_core.

A :class:`Registry` is a ``{entry.name: entry}`` dict whose entries are checked when they are
added and whose :meth:`~Registry.lookup` refuses an unknown name with the known ones::

    ADAPTERS = Registry('adapter', ModelError, _check_adapter, [NanodetAdapter(), ...])
    ADAPTERS.lookup('yolov9')
    # ModelError: unknown adapter 'yolov9', expecting one of ['nanodet', ...]

The model adapters (:data:`edge_vision_core.inference.adapters.ADAPTERS`), the optimize recipes
(:data:`edge_vision_core.optimize.recipes.RECIPES`) and the preprocess steps
(:data:`edge_vision_core.imaging.steps.STEP_TABLE`) are registries; each entry holds its code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

__all__ = ['Registry']

T = TypeVar('T')


class Registry(dict, Generic[T]):
    """``{entry.name: entry}`` in registration order (see the module docstring).

    Args:
        what: what an entry is, for messages (``'adapter'``, ``'recipe'``, ``'step'``).
        error: the exception :meth:`lookup` raises for an unknown name (an EdgeVisionError
            subclass: ``ModelError`` for adapters named in manifests, ``ConfigError`` for
            settings).
        check: ``check(entry, registry)`` validates an entry before it is added (raises
            ValueError or TypeError naming the problem); None accepts any entry with a name.
        entries: the initial entries.

    Raises:
        ValueError, TypeError: an initial entry that fails ``check`` or repeats a name.
    """

    def __init__(self, what: str, error: type[Exception],
                 check: Callable[[Any, Mapping[str, T]], None] | None = None,
                 entries: Iterable[T] = ()) -> None:
        super().__init__()
        self.what = what
        self.error = error
        self._check = check
        for entry in entries:
            self.register(entry)

    def register(self, entry: T) -> T:
        """Add ``entry`` under ``entry.name`` and return it.

        Raises:
            ValueError: the name is taken (or ``check`` refuses the entry).
            TypeError: ``check`` refuses the entry's type.
        """
        if self._check is not None:
            self._check(entry, self)
        name = getattr(entry, 'name', None)
        if not isinstance(name, str) or not name:
            raise TypeError(f'a {self.what} needs a non-empty name, got {entry!r}')
        if name in self:
            raise ValueError(f'{self.what} {name!r} is already registered ({self[name]!r})')
        self[name] = entry
        return entry

    def lookup(self, name: Any) -> T:
        """The entry named ``name``.

        Raises:
            the registry's error: "unknown <what> 'x', expecting one of [...]".
        """
        try:
            return self[name]
        except (KeyError, TypeError):
            raise self.error(f'unknown {self.what} {name!r}, expecting one of '
                             f'{list(self)}') from None

    def __repr__(self) -> str:
        return f'Registry({self.what}: {", ".join(self)})'
