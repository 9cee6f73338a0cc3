"""Locks and profiles: requirement-file reading, the lock model and its checks, stack.toml, pylock.toml."""
