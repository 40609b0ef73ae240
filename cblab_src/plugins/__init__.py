"""Scheduler hooks and attention replacement."""

from ..model.sampling import LogitsProcessor
from .base import AttentionPlugin, PluginManager, SchedulerPlugin
from .builtin import LoggingPlugin, MetricsPlugin, TanhLogitsProcessor, format_step

__all__ = ["LogitsProcessor", "AttentionPlugin", "PluginManager", "SchedulerPlugin", "LoggingPlugin",
           "MetricsPlugin", "TanhLogitsProcessor", "format_step"]
