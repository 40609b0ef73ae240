"""Undo records, so a failed step can put the KV cache back exactly as it was.

A scheduler step reserves KV blocks, admits and preempts requests, and runs the model (which
writes keys and values into the cache) before anything is committed. If something raises on
the way — a policy, an attention plugin, a logits processor, Ctrl-C — the step must leave no
trace (see :mod:`~cblab_src.core.step_undo`). :class:`Undoable` gives the block pool and the
KV caches that ability: between :meth:`~Undoable.checkpoint` and the end of the step every
change logs how to undo itself; :meth:`~Undoable.rollback` applies those records newest first,
:meth:`~Undoable.drop_checkpoint` forgets them. Outside a step nothing is logged, so a cache
used on its own pays nothing.

Each record is the inverse of one change (``heappush`` for a ``heappop``, the old value for an
assignment), taken in O(1); an undo may cost more (removing a block from the free heap), since
it runs only when a step fails.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping

_MISSING = object()


def _restore_item(mapping: MutableMapping, key, value) -> None:
    if value is _MISSING:
        mapping.pop(key, None)
    else:
        mapping[key] = value


class Undoable:
    """State that can be rolled back to its last :meth:`checkpoint` (see the module docstring).

    Subclasses call :meth:`_log` (or :meth:`_save_item`, :meth:`_save_attr`) *before* each
    change, and override :meth:`_save_state` / :meth:`_restore_state` for what is cheaper to
    copy once per step than to log change by change.
    """

    _undo: list[tuple[Callable, tuple]] | None = None

    @property
    def has_checkpoint(self) -> bool:
        return self._undo is not None

    def checkpoint(self) -> None:
        """Start logging changes; :meth:`rollback` returns to this state."""
        if self._undo is not None:
            raise RuntimeError(f"{type(self).__name__} already has a checkpoint")
        self._undo = []
        self._saved = self._save_state()

    def rollback(self) -> None:
        """Undo every change since :meth:`checkpoint`, newest first, and stop logging."""
        undo, self._undo = self._undo, None
        if undo is None:
            raise RuntimeError(f"{type(self).__name__} has no checkpoint to roll back to")
        while undo:
            fn, args = undo.pop()
            fn(*args)
        self._restore_state(self._saved)
        self._saved = None

    def drop_checkpoint(self) -> None:
        """Keep every change since :meth:`checkpoint` and stop logging."""
        self._undo = self._saved = None

    def _save_state(self):
        return None

    def _restore_state(self, saved) -> None:
        pass

    def _log(self, fn: Callable, *args) -> None:
        """Record ``fn(*args)`` as the undo of the change about to happen (if logging)."""
        if self._undo is not None:
            self._undo.append((fn, args))

    def _save_item(self, mapping: MutableMapping, key) -> None:
        """Record ``mapping[key]``'s value now (or its absence), to put back on rollback."""
        if self._undo is not None:
            self._undo.append((_restore_item, (mapping, key, mapping.get(key, _MISSING))))

    def _save_attr(self, obj, name: str, copy: Callable = lambda value: value) -> None:
        """Record ``obj.name`` now (through ``copy`` if it is changed in place)."""
        if self._undo is not None:
            self._undo.append((setattr, (obj, name, copy(getattr(obj, name)))))
