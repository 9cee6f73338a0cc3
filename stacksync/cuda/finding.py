"""One result of a doctor check (:class:`Finding`: level, topic, message, fix) and its constructors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stacksync.core.redact import redact

__all__ = ["LEVELS", "Finding", "Level", "err", "ok", "warn"]

Level = Literal["ok", "warning", "error"]
LEVELS: tuple[Level, ...] = ("ok", "warning", "error")


@dataclass(frozen=True)
class Finding:
    """One result of a check: ``level`` ok / warning / error, a ``topic`` (driver, torch, libraries,
    nvcc, ninja, compiler, memory, glibc, python, lock ...), what was found, and the fix."""

    level: Level
    topic: str
    message: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {"level": self.level, "topic": self.topic, "message": redact(self.message),
                "fix": redact(self.fix)}


def ok(topic: str, message: str) -> Finding:
    return Finding("ok", topic, message)


def warn(topic: str, message: str, fix: str) -> Finding:
    return Finding("warning", topic, message, fix)


def err(topic: str, message: str, fix: str) -> Finding:
    return Finding("error", topic, message, fix)
