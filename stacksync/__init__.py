"""stacksync: make a second Python environment an exact, verified twin of a baseline one."""

__version__ = "0.1.0"
