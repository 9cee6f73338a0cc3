"""``invoke freeze``: turn a probed environment into sorted, canonical requirement lines.

Pure: :func:`freeze_lines` takes a :class:`~stacksync.environment.Snapshot` and returns the lines
and the warnings; the task writes them.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from .defaults import INSTALLER_PACKAGES
from .environment import Snapshot
from .redact import redact


@dataclass
class Frozen:
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def freeze(snapshot: Snapshot, *, include_installers: bool = False) -> Frozen:
    """One line per distribution, sorted by canonical name. ``@ file://`` installs (conda) become
    ``name==version``; editable and local-directory installs are left out; VCS installs keep their
    URL with the commit."""
    result = Frozen()
    converted: list[str] = []
    for name in sorted(snapshot.distributions):
        dist = snapshot.distributions[name]
        if name in INSTALLER_PACKAGES and not include_installers:
            continue
        kind = dist.kind
        if kind in ("index", "local-file"):
            result.lines.append(f"{name}=={dist.version}")
            if kind == "local-file":
                converted.append(f"{name}=={dist.version}")
        elif kind in ("vcs", "url"):
            result.lines.append(f"{name} @ {redact(dist.url or '')}")
        else:
            result.left_out.append(name)
            result.warnings.append(
                f"{name} {dist.version} is an {'editable' if kind == 'editable' else 'local-path'} install "
                f"({redact(str((dist.direct_url or {}).get('url', '')))}): left out; install it separately "
                "in the second environment")
    if converted:
        result.warnings.append(
            "installed from local files (`@ file://`, typical of conda), written as name==version: "
            + ", ".join(converted))
    return result


def header(snapshot: Snapshot, today: _dt.date | None = None) -> list[str]:
    """Comment lines recording where and when the freeze was taken."""
    env = snapshot.marker_environment
    glibc = snapshot.platform.get("glibc")
    day = (today or _dt.date.today()).isoformat()
    return [
        f"# stacksync freeze of {snapshot.python.absolute()}",
        f"# python {snapshot.version} ({env.get('implementation_name', '?')}) on "
        f"{env.get('sys_platform', '?')} {env.get('platform_machine', '?')}"
        + (f", glibc {glibc}" if glibc else ""),
        f"# date: {day}",
    ]


def render(snapshot: Snapshot, *, include_installers: bool = False,
           today: _dt.date | None = None) -> tuple[str, Frozen]:
    frozen = freeze(snapshot, include_installers=include_installers)
    text = "\n".join([*header(snapshot, today), *frozen.lines]) + "\n"
    return text, frozen


def write_freeze(python: str, *, out: str | None = None, profile_name: str | None = None,
                 include_installers: bool = False) -> tuple[str, Frozen, str | None]:
    """Probe ``python`` and write its freeze to ``out``, to ``locks/<profile>/requirements.in``
    (creating a starter ``stack.toml`` when the profile is new), or return it for stdout.
    Returns (text, frozen, path written or None)."""
    import os
    import tempfile
    from pathlib import Path

    from . import defaults
    from .environment import probe

    snapshot = probe(python)
    text, frozen = render(snapshot, include_installers=include_installers)
    target: Path | None = Path(out) if out else None
    if profile_name:
        folder = defaults.LOCKS_DIR / profile_name
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / defaults.REQUIREMENTS_IN
        toml = folder / defaults.STACK_TOML
        if not toml.exists():
            toml.write_text(starter_stack_toml(snapshot), encoding="utf-8")
    if target is None:
        return text, frozen, None
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, target)
    return text, frozen, str(target)


def starter_stack_toml(snapshot: Snapshot) -> str:
    """A first stack.toml for a baseline freeze: the Python it came from, and the usual base and
    deferred packages when the environment has them."""
    names = set(snapshot.distributions)
    base = [n for n in ("torch", "torchvision", "torchaudio", "triton") if n in names]
    lines = ["# Written by `invoke freeze --profile`; edit to taste.",
             f'python = "{snapshot.python_xy}"',
             f'platforms = ["{snapshot.marker_environment.get("sys_platform", "linux")}"]',
             "base = [" + ", ".join(f'"{n}"' for n in base) + "]", ""]
    if base:
        lines += ["[smoke]", 'base = ["torch"]' if "torch" in base else "base = []", ""]
    if "flash-attn" in names:
        lines += ["[deferred.flash-attn]", 'requires = ["torch", "einops"]', 'imports = ["torch"]',
                  'build_requires = ["setuptools", "wheel", "packaging", "ninja", "psutil"]',
                  'build_env = { MAX_JOBS = "4" }', ""]
    return "\n".join(lines)
