"""Where the plugin bases used to live; kept so that ``cblab_src.plugins.base`` still imports.

The hooks the scheduler calls (:class:`SchedulerPlugin`, :class:`AttentionPlugin`,
:class:`PluginManager`) live with the scheduler, in :mod:`cblab_src.core.hooks`, whose docstring
gives the order of the hooks; the engine (``core``) never imports ``plugins``.
"""

from ..core.hooks import AttentionPlugin, PluginManager, SchedulerPlugin

__all__ = ["SchedulerPlugin", "AttentionPlugin", "PluginManager"]
