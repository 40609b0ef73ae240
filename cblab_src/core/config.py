"""The scheduler's knobs, in one frozen, validated object.

``Scheduler``, :func:`~cblab_src.simulate.simulate_schedule` and
:func:`~cblab_src.timing.simulate_timed` all take a :class:`SchedulerConfig` (or the same
names as keyword arguments, which build one), so a setting means the same thing everywhere
and is checked in one place. A config never changes; :meth:`SchedulerConfig.replace` makes a
new, checked one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .._validate import non_negative_int, one_of, optional_positive_int, positive_int

KV_LAYOUTS = ("dense", "paged")


@dataclass(frozen=True)
class SchedulerConfig:
    """How a scheduler batches: ``SchedulerConfig(max_tokens_per_step=8, prefill_chunk_size=4)``."""

    max_tokens_per_step: int            # token budget of one step (decodes + prefill chunks)
    prefill_chunk_size: int             # most prompt tokens of one request in one step
    kv_layout: str = "paged"            # "paged" (shared block pool) or "dense" (one array each)
    block_size: int = 16                # token slots per KV block (paged)
    num_blocks: int | None = None       # blocks in the pool; None: the pool grows to fit
    enable_prefix_caching: bool = False  # share full blocks of identical prompt prefixes
    watermark_blocks: int = 0           # blocks kept free when admitting while others run
    max_num_seqs: int | None = None     # most requests running at once; None: no cap
    policy: object = "decode_first"     # a name in cblab_src.core.policies.POLICIES, or a Policy
    keep_finished: int | None = 10_000  # finished requests remembered, the oldest forgotten first
                                        # (a server left running keeps flat memory); None: all
    kv_hand_off: bool = False           # a prefill instance: a finished request keeps its KV
                                        # until hand_off() sends it on (core/handoff.py)

    def __post_init__(self) -> None:
        from .policies import resolve_policy          # (policies import this module)
        checks = dict(max_tokens_per_step=positive_int, prefill_chunk_size=positive_int,
                      block_size=positive_int,            # checked for both layouts
                      num_blocks=optional_positive_int, watermark_blocks=non_negative_int,
                      max_num_seqs=optional_positive_int, keep_finished=optional_positive_int)
        for name, check in checks.items():                # store plain ints (not numpy ints)
            object.__setattr__(self, name, check(name, getattr(self, name)))
        one_of("kv_layout", self.kv_layout, KV_LAYOUTS)
        for name in ("enable_prefix_caching", "kv_hand_off"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        resolve_policy(self.policy)
        if self.num_blocks is not None and self.watermark_blocks >= self.num_blocks:
            raise ValueError(f"watermark_blocks must be < num_blocks ({self.num_blocks}), "
                             f"got {self.watermark_blocks}")
        if self.enable_prefix_caching and self.kv_layout != "paged":
            raise ValueError(f"enable_prefix_caching needs kv_layout='paged', got "
                             f"kv_layout={self.kv_layout!r}")

    def replace(self, **changes) -> "SchedulerConfig":
        """A copy with ``changes`` applied, checked like a new config."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def of(cls, config: "SchedulerConfig | None" = None, **knobs) -> "SchedulerConfig":
        """``config`` with ``knobs`` applied, or a new config from ``knobs`` alone."""
        if config is None:
            return cls(**knobs)
        if not isinstance(config, cls):
            raise TypeError(f"config must be a SchedulerConfig, got {config!r}")
        return config.replace(**knobs) if knobs else config


def knob(name: str, settable: bool) -> property:
    """A property of an object holding a ``config``: reads ``config.<name>``; setting it (if
    ``settable``) replaces the config by a copy checked like a new one."""
    def get(self):
        return getattr(self.config, name)

    def set_(self, value):
        self.config = self.config.replace(**{name: value})
    return property(get, set_ if settable else None, doc=f"The config's ``{name}``.")
