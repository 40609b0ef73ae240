"""Extension points: scheduler hooks and a swappable attention function.

The scheduler calls the hooks of every registered :class:`SchedulerPlugin`, in registration
order, at these moments of a step::

    add_request(r)  -> on_request_added(scheduler, r)
    step()          -> before_step(scheduler)
                       ... schedule, run the model, sample ...
                       on_request_finished(scheduler, r)   for each request finishing now
                       after_step(scheduler, stats)

A :class:`LogitsProcessor` registered with ``register_logits_processor`` rewrites each
request's logits just before its token is sampled (``TinyLLM.generate`` accepts the same
processors, so a request can still be compared with itself alone).

All hooks are optional: a plugin overrides only those it needs. A plugin may change the
scheduler's public knobs (``max_tokens_per_step``, ``prefill_chunk_size``) in ``before_step``;
the new values apply to that step.
"""

from __future__ import annotations

import abc

import numpy as np

from ..attention.dense_attention import masked_attention
from ..model.sampling import LogitsProcessor, apply_logits_processors


class SchedulerPlugin:
    """Base class of scheduler plugins; every hook does nothing by default."""

    def on_request_added(self, scheduler, request) -> None:
        """A request was accepted by ``add_request``."""

    def before_step(self, scheduler) -> None:
        """A step is about to be scheduled (``scheduler.step_count`` is its ``step_id``)."""

    def on_request_finished(self, scheduler, request) -> None:
        """A request sampled its last token in step ``request.finish_step`` and returned its
        KV memory. The step is committed (``scheduler.step_count`` is already the next one):
        if this hook raises, the step stands."""

    def after_step(self, scheduler, stats) -> None:
        """A step finished; ``stats`` is the :class:`~cblab_src.core.scheduler.StepStats` it
        returns (``scheduler.step_count`` is already the next step)."""


class AttentionPlugin(abc.ABC):
    """Replaces the model's attention core ``(q, k, v, mask) -> out``.

    ``q`` is ``(T, H, D)``, ``k`` and ``v`` are ``(S, H, D)``, ``mask`` is ``(T, S)`` bool
    (causal over the request's whole context); the result is ``(T, H, D)``.
    """

    @abc.abstractmethod
    def compute_attention(self, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                          mask: np.ndarray) -> np.ndarray:
        ...


class PluginManager:
    """Holds a scheduler's plugins and calls their hooks."""

    def __init__(self) -> None:
        self._scheduler_plugins: list[SchedulerPlugin] = []
        self._attention_plugin: AttentionPlugin | None = None
        self._logits_processors: list[LogitsProcessor] = []

    @property
    def scheduler_plugins(self) -> tuple[SchedulerPlugin, ...]:
        return tuple(self._scheduler_plugins)

    @property
    def attention_plugin(self) -> AttentionPlugin | None:
        return self._attention_plugin

    def register_scheduler_plugin(self, plugin: SchedulerPlugin) -> SchedulerPlugin:
        """Add a plugin whose hooks run after those registered before it; returns it."""
        if not isinstance(plugin, SchedulerPlugin):
            raise TypeError(f"plugin must be a SchedulerPlugin, got {plugin!r}")
        if plugin in self._scheduler_plugins:
            raise ValueError(f"plugin {plugin!r} is already registered")
        self._scheduler_plugins.append(plugin)
        return plugin

    def unregister_scheduler_plugin(self, plugin: SchedulerPlugin) -> None:
        if plugin not in self._scheduler_plugins:
            raise ValueError(f"plugin {plugin!r} is not registered")
        self._scheduler_plugins.remove(plugin)

    def register_attention_plugin(self, plugin: AttentionPlugin | None) -> None:
        """Use ``plugin.compute_attention`` as the model's attention (``None`` restores the default)."""
        if plugin is not None and not isinstance(plugin, AttentionPlugin):
            raise TypeError(f"plugin must be an AttentionPlugin or None, got {plugin!r}")
        self._attention_plugin = plugin

    @property
    def attention_fn(self):
        """The attention function the model should use this step."""
        plugin = self._attention_plugin
        return masked_attention if plugin is None else plugin.compute_attention

    def register_logits_processor(self, processor: LogitsProcessor) -> LogitsProcessor:
        """Apply ``processor`` to every sampled row, after those registered before it."""
        if not isinstance(processor, LogitsProcessor):
            raise TypeError(f"processor must be a LogitsProcessor, got {processor!r}")
        self._logits_processors.append(processor)
        return processor

    @property
    def logits_processors(self) -> tuple[LogitsProcessor, ...]:
        return tuple(self._logits_processors)

    def process_logits(self, tokens, logits: np.ndarray) -> np.ndarray:
        """Run the logits processors in registration order."""
        return apply_logits_processors(self._logits_processors, tokens, logits)

    def dispatch(self, hook: str, *args) -> None:
        """Call ``hook(*args)`` on every scheduler plugin, in registration order."""
        for plugin in self._scheduler_plugins:
            getattr(plugin, hook)(*args)

