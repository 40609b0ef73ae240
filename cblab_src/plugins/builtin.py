"""Ready-made plugins: a step logger and a metrics recorder."""

from __future__ import annotations

import logging

import numpy as np

from ..core.hooks import SchedulerPlugin
from ..model.sampling import LogitsProcessor
from ..monitoring.metrics import MetricsCollector


def format_step(stats) -> str:
    """One line per step, e.g. ``[step 3] decode=2 prefill=5 reqs=[0, 1, 2] finished=[0]``.

    ``decode`` and ``prefill`` count tokens; ``reqs`` lists the requests in the step's batch,
    decodes first, in batch order. Preemptions say why:
    ``preempted=[2 (req 0 needed 1 block, 0 available)]``.
    """
    reqs = list(stats.decode_ids) + [rid for rid, _, _ in stats.prefill_chunks]
    line = (f"[step {stats.step_id}] decode={stats.num_decode_tokens} "
            f"prefill={stats.num_prefill_tokens} reqs={reqs}")
    if stats.finished_ids:
        line += f" finished={list(stats.finished_ids)}"
    if stats.preemptions:
        why = ", ".join(f"{p.req_id} ({p.reason()})" for p in stats.preemptions)
        line += f" preempted=[{why}]"
    return line


class LoggingPlugin(SchedulerPlugin):
    """Logs every step with :func:`format_step` and keeps the lines in ``self.lines``."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO):
        self.logger = logger or logging.getLogger("cblab_src.scheduler")
        self.level = level
        self.lines: list[str] = []

    def after_step(self, scheduler, stats) -> None:
        line = format_step(stats)
        self.lines.append(line)
        self.logger.log(self.level, line)


class MetricsPlugin(SchedulerPlugin):
    """Feeds a :class:`~cblab_src.monitoring.metrics.MetricsCollector` every step and request."""

    def __init__(self, collector: MetricsCollector | None = None):
        self.collector = collector or MetricsCollector()

    def after_step(self, scheduler, stats) -> None:
        self.collector.record_step(**stats)

    def on_request_finished(self, scheduler, request) -> None:
        self.collector.record_request(request)


class TanhLogitsProcessor(LogitsProcessor):
    """The roadmap's "apply tanh to the decode output": squash logits into ``(-1, 1)``.

    tanh keeps the order of the logits, so greedy decoding is unchanged (as long as logits stay
    below about 19 in size: beyond, float64 rounds tanh to exactly +-1 and ties appear; the
    logits of TinyLLM, random or pretrained, stay well below that); but it flattens the
    distribution, so with temperature sampling nearly every token becomes likely.
    """

    def process_logits(self, tokens, logits: np.ndarray) -> np.ndarray:
        return np.tanh(logits)
