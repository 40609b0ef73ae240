"""Argument checks shared by the engine's public constructors and methods.

Each check raises ``TypeError`` for a value of the wrong type and ``ValueError`` for a value
out of range; the message always names the parameter and repeats the value, so a reader who
moves a slider too far sees exactly what was refused.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np


def _is_int(value) -> bool:
    # bool is an int subclass, but True as a budget is a bug, not a 1.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# Most items one call may be asked to make (requests, samples, a step's decodes): far above any
# chapter or benchmark, and a ValueError instead of a MemoryError, an OverflowError or an
# endless loop for a mistyped 10**12.
MAX_COUNT = 10**8


def require_int(name: str, value, *, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer ``>= minimum`` (and ``<= maximum``, if
    given), else raise."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {_short_repr(value)}")
    return int(value)


def positive_int(name: str, value, *, maximum: int | None = None) -> int:
    """Return ``value`` if it is an integer >= 1 (e.g. a budget or a block size)."""
    return require_int(name, value, minimum=1, maximum=maximum)


def non_negative_int(name: str, value, *, maximum: int | None = None) -> int:
    """Return ``value`` if it is an integer >= 0 (e.g. ``max_new_tokens`` or an arrival step)."""
    return require_int(name, value, minimum=0, maximum=maximum)


def optional_positive_int(name: str, value) -> int | None:
    """``None`` or a positive integer."""
    return None if value is None else positive_int(name, value)


def token_ids(name: str, values, *, vocab_size: int | None = None) -> tuple[int, ...]:
    """Return ``values`` as a tuple of token ids, checking each is an int in ``[0, vocab_size)``.

    Accepts any sequence (list, tuple, range, ...) or 1-D integer array; an empty sequence is
    refused, and so is an unordered collection (a set or a dict has no token order).
    """
    ordered = (isinstance(values, Sequence) and not isinstance(values, (str, bytes, bytearray))
               or isinstance(values, np.ndarray) and values.ndim == 1)
    if not ordered:
        kind = type(values).__name__
        raise TypeError(f"{name} must be an ordered sequence of token ids (a list, tuple or "
                        f"1-D array), got {_short_repr(values)} ({kind})")
    if len(values) == 0:
        raise ValueError(f"{name} must not be empty, got {values!r}")
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":   # checked in numpy
        low, high = int(values.min()), int(values.max())
        if low >= 0 and (vocab_size is None or high < vocab_size):
            return tuple(values.tolist())
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
    """Return ``value`` if it is one of the ``allowed`` strings (a ``str``, not something that
    merely compares equal to one, such as ``np.array(["paged"])``).

    Anything else is a ``ValueError``, whatever its type: the choices are a closed set of
    names, and a value of another type is just one more value outside it."""
    if not isinstance(value, str) or value not in allowed:
        kind = "" if isinstance(value, str) or value is None else f" ({type(value).__name__})"
        raise ValueError(f"{name} must be one of {allowed}, got {_short_repr(value)}{kind}")
    return str(value)


def real(name: str, value, *, minimum: float | None = None, maximum: float | None = None,
         positive: bool = False) -> float:
    """Return ``value`` as a finite float, else raise.

    ``TypeError`` unless it is a real number (a ``bool`` is not: ``True`` as a rate is a bug);
    ``ValueError`` if it is NaN, infinite, too large for a float (``10**400``), below
    ``minimum``, above ``maximum``, or (with ``positive``) not ``> 0``.
    """
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got {_short_repr(value)} "
                        f"({type(value).__name__})")
    try:
        x = float(value)
    except OverflowError:
        x = math.inf
    if positive and not x > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {_short_repr(value)}")
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {_short_repr(value)}")
    if minimum is not None and x < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {_short_repr(value)}")
    if maximum is not None and x > maximum:
        raise ValueError(f"{name} must be <= {maximum:g}, got {_short_repr(value)}")
    return x


def _short_repr(value, limit: int = 60) -> str:
    """``repr(value)``, shortened in the middle when long (``10**400`` has 401 digits)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 4:]}"


def _short(ids: tuple) -> str:
    text = repr(list(ids[:8]))
    return text if len(ids) <= 8 else text[:-1] + ", ...]"


# Dtypes the engine keeps batch-invariant: a request's tokens are the same batched or alone.
BATCH_INVARIANT_DTYPES = ("float32", "float64")


def model_dtype(value, *, allow_batch_variance: bool = False) -> np.dtype:
    """Return ``np.dtype(value)`` if a model may compute in it, else raise.

    Only floating dtypes are numbers a transformer can compute with (``TypeError`` otherwise).
    Of those, float32 and float64 keep the engine's guarantee that batching never changes a
    request's tokens; float16 does not (its rounding makes logits depend on how a prompt was
    chunked and batched, so near-ties flip), and wider ones are unchecked: they are refused with
    a ``ValueError`` unless ``allow_batch_variance=True`` says the caller accepts that.
    """
    if not isinstance(allow_batch_variance, bool):
        raise TypeError(f"allow_batch_variance must be a bool, got {allow_batch_variance!r}")
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"dtype must be a numpy floating dtype (np.float32 or np.float64), "
                        f"got {_short_repr(value)}") from None
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating-point dtype (np.float32 or np.float64), got "
                        f"{dtype.name}: a model cannot compute its activations in integers")
    if dtype.name not in BATCH_INVARIANT_DTYPES and not allow_batch_variance:
        why = ("its rounding (about 1e-3) makes a request's logits depend on how its prompt was "
               "chunked and what it was batched with, so a batched run can sample other tokens "
               "than generate() alone" if dtype.itemsize < 4 else
               "the engine's batch invariance is only checked for float32 and float64")
        raise ValueError(f"dtype {dtype.name} breaks batch invariance: {why}. Use np.float32 or "
                         f"np.float64, or pass allow_batch_variance=True to run it anyway "
                         f"(batched tokens may then differ from generate())")
    return dtype
