"""The requirements files a phase hands to pip: pins already marker-evaluated for the target, with
their hashes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from stacksync.lock.lockfile import Pin

__all__ = ["pin_line", "write_requirements"]


def pin_line(pin: Pin) -> str:
    """The pin as an install line without its marker (the file is already evaluated for the target;
    pip-sync would evaluate markers for the interpreter running it)."""
    extras = f"[{','.join(sorted(pin.extras))}]" if pin.extras else ""
    # ``===2.4.0`` (a baseline's exact pin) is installed as ``==2.4.0``: the hash already names the
    # exact file, and uv's hash-checking mode takes only ``==`` pins
    spec = f"=={pin.version}" if pin.version is not None and pin.specifier.startswith("===") else pin.specifier
    head = f"{pin.name}{extras}{spec}" if pin.url is None else f"{pin.name}{extras} @ {pin.url}"
    return " \\\n    ".join([head, *(f"--hash={h}" for h in pin.hashes)])


def write_requirements(path: Path, pins: Iterable[Pin], extra: Iterable[str] = ()) -> Path:
    lines = [pin_line(p) for p in sorted(pins, key=lambda p: p.name)] + list(extra)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

