"""invoke tasks of this repository: stacksync's own, as any project's tasks.py gets them (`invoke --list`)."""

from stacksync.tasks import ns

__all__ = ["ns"]
