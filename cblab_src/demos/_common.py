"""Helpers shared by the demos: seeded workloads, argparse types and text drawings."""

from __future__ import annotations

import argparse

import numpy as np

from ..core.request import Request

SPARK = " ▁▂▃▄▅▆▇█"   # sparkline levels: 0 (nothing) .. 8 (full)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def random_prompt(rng: np.random.Generator, length: int, vocab_size: int = 128) -> list[int]:
    """``length`` token ids drawn uniformly from ``[0, vocab_size)``."""
    return rng.integers(0, vocab_size, size=length).tolist()


def make_workload(num_requests: int, seed: int, *, prompt_lens=(3, 12), max_new_tokens=(2, 6),
                  mean_gap: float = 0.0, vocab_size: int = 128) -> list[Request]:
    """Seeded requests ``0 .. num_requests-1`` with random prompts, lengths and arrival steps.

    ``prompt_lens`` and ``max_new_tokens`` are an int (every request) or an inclusive range
    ``(lo, hi)``. Gaps between arrivals are Poisson with mean ``mean_gap`` (0: all arrive at
    step 0); the first request arrives at step 0.
    """
    rng = np.random.default_rng(seed)

    def draw(spec):
        lo, hi = (spec, spec) if isinstance(spec, int) else spec
        return rng.integers(lo, hi + 1, size=num_requests)

    lens, news = draw(prompt_lens), draw(max_new_tokens)
    gaps = rng.poisson(mean_gap, size=num_requests)
    arrivals = np.cumsum(gaps) - gaps[0]
    return [Request(i, random_prompt(rng, int(lens[i]), vocab_size), int(news[i]), int(arrivals[i]))
            for i in range(num_requests)]


def draw_mask(mask: np.ndarray, labels=None) -> str:
    """A bool matrix as text: '■' where True, '·' where False, one row per line.

    ``labels`` (one short string per row, e.g. ``"A0"``) head the rows and the columns of a
    square mask; without them the rows and columns are numbered.
    """
    labels = [str(i) for i in range(mask.shape[0])] if labels is None else [str(x) for x in labels]
    w = max(len(x) for x in labels) if labels else 1
    lines = [" " * w + " " + " ".join(x.rjust(w) for x in labels[:mask.shape[1]])]
    for label, row in zip(labels, mask):
        lines.append(label.rjust(w) + " " + " ".join(("■" if m else "·").rjust(w) for m in row))
    return "\n".join(lines)


def bar(value: float, total: float, width: int = 20) -> str:
    """A horizontal bar ``'████░░░░'`` of ``width`` cells, filled ``value / total``."""
    filled = 0 if total <= 0 else round(width * min(value, total) / total)
    return "█" * filled + "░" * (width - filled)


def sparkline(values, top: float) -> str:
    """One character per value, its height ``value / top`` (blank for 0, '█' for ``top``)."""
    values = np.asarray(values, dtype=float)
    fraction = np.clip(values / top, 0, 1) if top > 0 else np.zeros_like(values)
    levels = np.ceil(fraction * (len(SPARK) - 1)).astype(int)
    return "".join(SPARK[i] for i in levels)
