"""stacksync's invoke tasks as one :class:`invoke.Collection`: a project's ``tasks.py`` is
``from stacksync.tasks import ns`` (the tasks live in :mod:`stacksync.cli.tasks`)."""

from stacksync.cli.tasks import ns

__all__ = ["ns"]
