"""Scheduler hooks and attention replacement."""

from .base import AttentionPlugin, PluginManager, SchedulerPlugin
from .builtin import LoggingPlugin, MetricsPlugin, format_step

__all__ = ["AttentionPlugin", "PluginManager", "SchedulerPlugin", "LoggingPlugin",
           "MetricsPlugin", "format_step"]
