"""Argument checks shared by the engine's public constructors and methods.

Each check raises ``TypeError`` for a value of the wrong type and ``ValueError`` for a value
out of range; the message always names the parameter and repeats the value, so a reader who
moves a slider too far sees exactly what was refused.
"""

from __future__ import annotations

import numbers


def _is_int(value) -> bool:
    # bool is an int subclass, but True as a budget is a bug, not a 1.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def require_int(name: str, value, *, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer ``>= minimum``, else raise."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return int(value)


def positive_int(name: str, value) -> int:
    """Return ``value`` if it is an integer >= 1 (e.g. a budget or a block size)."""
    return require_int(name, value, minimum=1)


def non_negative_int(name: str, value) -> int:
    """Return ``value`` if it is an integer >= 0 (e.g. ``max_new_tokens`` or an arrival step)."""
    return require_int(name, value, minimum=0)


def optional_positive_int(name: str, value) -> int | None:
    """``None`` or a positive integer."""
    return None if value is None else positive_int(name, value)


def token_ids(name: str, values, *, vocab_size: int | None = None) -> tuple[int, ...]:
    """Return ``values`` as a tuple of token ids, checking each is an int in ``[0, vocab_size)``.

    Accepts any sequence or 1-D integer array; an empty sequence is refused.
    """
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a sequence of token ids, got {values!r}")
    if len(values) == 0:
        raise ValueError(f"{name} must not be empty, got {values!r}")
    ids = tuple(values)
    if all(type(t) is int for t in ids):               # the common case, checked fast
        low, high = min(ids), max(ids)
        if low >= 0 and (vocab_size is None or high < vocab_size):
            return ids
    bad_type = [t for t in ids if not _is_int(t)]
    if bad_type:
        raise TypeError(f"{name} must hold integer token ids, got {bad_type[0]!r} in {_short(ids)}")
    upper = vocab_size if vocab_size is not None else None
    bad = [t for t in ids if t < 0 or (upper is not None and t >= upper)]
    if bad:
        allowed = f"[0, {upper})" if upper is not None else ">= 0"
        raise ValueError(f"{name} holds token id {bad[0]!r} outside {allowed}: {_short(ids)}")
    return tuple(int(t) for t in ids)


def one_of(name: str, value, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of the ``allowed`` strings."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _short(ids: tuple) -> str:
    text = repr(list(ids[:8]))
    return text if len(ids) <= 8 else text[:-1] + ", ...]"
