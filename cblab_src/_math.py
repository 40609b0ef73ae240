"""Integer arithmetic shared by every layer of the engine (imports nothing from cblab_src)."""

from __future__ import annotations


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for integers ``a >= 0``, ``b >= 1``, exactly (no float rounding): how many
    groups of ``b`` it takes to hold ``a`` things, e.g. KV blocks of ``b`` slots for ``a`` tokens.

    >>> ceil_div(9, 4), ceil_div(8, 4), ceil_div(0, 4)   # 9 tokens in blocks of 4 need 3 blocks
    (3, 2, 0)

    Floor division rounds towards minus infinity, so ``-(-a // b)`` rounds ``a / b`` up; it
    works elementwise on integer numpy arrays too.
    """
    return -(-a // b)
