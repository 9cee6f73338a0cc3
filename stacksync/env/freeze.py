"""``invoke freeze``: turn a probed environment into sorted, canonical requirement lines.

Pure: :func:`freeze_lines` takes a :class:`~stacksync.env.environment.Snapshot` and returns the lines
and the warnings; the task writes them.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from stacksync.core.defaults import INSTALLER_PACKAGES
from stacksync.core.fs import atomic_write_text
from stacksync.core.redact import redact
from stacksync.env.environment import Snapshot


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
    """Probe ``python`` and write its freeze to ``out``, or return it for stdout. With
    ``profile_name``, the environment becomes ``locks/<profile>/requirements.in`` and (when the
    profile is new) a commented ``stack.toml``, as ``invoke freeze --from`` proposes them
    (:mod:`stacksync.env.baseline`: editable git checkouts become pins at their commit).
    Returns (text, frozen, path written or None)."""
    from pathlib import Path

    from stacksync.env import baseline
    from stacksync.env.environment import probe

    snapshot = probe(python)
    text, frozen = render(snapshot, include_installers=include_installers)
    if profile_name:
        proposal = baseline.propose(baseline.pins_from_snapshot(snapshot), profile=profile_name,
                                    source=str(snapshot.python), python=snapshot.python_xy,
                                    include_installers=include_installers,
                                    platform=snapshot.marker_environment.get("sys_platform", "linux"))
        frozen.warnings += [w for w in proposal.warnings if "left out" not in w]
        req, _ = baseline.write_profile(proposal, profile_name)
        return proposal.requirements_in, frozen, str(req)
    target: Path | None = Path(out) if out else None
    if target is None:
        return text, frozen, None
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, text)
    return text, frozen, str(target)
