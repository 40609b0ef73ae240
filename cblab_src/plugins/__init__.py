"""Ready-made plugins (:mod:`.builtin`), and the bases they extend, re-exported from
:mod:`cblab_src.core.hooks` (the hooks live with the scheduler that calls them)."""

from ..core.hooks import AttentionPlugin, PluginManager, SchedulerPlugin
from ..model.sampling import LogitsProcessor
from .builtin import LoggingPlugin, MetricsPlugin, TanhLogitsProcessor, format_step

__all__ = ["LogitsProcessor", "AttentionPlugin", "PluginManager", "SchedulerPlugin", "LoggingPlugin",
           "MetricsPlugin", "TanhLogitsProcessor", "format_step"]
