"""Which variant of a profile fits a machine (pure: the driver's CUDA and the platform come in as data).

The rule: among the variants whose platforms admit the target (and not ``auto = false``), the one with the
highest ``cuda`` the driver supports (driver CUDA >= variant CUDA); without such a driver (none, or too
old), a variant without ``cuda`` (cpu). ``--variant NAME`` overrides the rule but not an unknown name. No
fit: a refusal that lists every variant and what it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stacksync.core.errors import StacksyncError
from stacksync.cuda.facts import Facts, probe_facts
from stacksync.lock.profile import Profile
from stacksync.lock.variants import Variant, platform_admits

__all__ = ["Choice", "NoVariant", "choose", "for_facts", "for_python", "platform_of"]


class NoVariant(StacksyncError):
    """No variant of the profile fits the machine (or ``--variant`` names none)."""


@dataclass(frozen=True)
class Choice:
    name: str
    why: str


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _platform_ok(variant: Variant, platform: str, machine: str) -> bool:
    return platform_admits(variant.platforms or (), platform, machine)


def _machine(driver_cuda: str | None, platform: str, machine: str) -> str:
    driver = f"a driver with CUDA {driver_cuda}" if driver_cuda else "no NVIDIA driver"
    return f"{driver}, platform {platform}" + (f"_{machine}" if machine else "")


def choose(variants: Mapping[str, Variant], driver_cuda: str | None, platform: str, *, machine: str = "",
           override: str | None = None, profile: str = "the profile") -> Choice:
    """The variant for a machine whose driver supports CUDA up to ``driver_cuda`` (``None``: no driver)
    and whose ``sys.platform`` is ``platform`` (``machine``: ``platform.machine()``, e.g. aarch64)."""
    here = _machine(driver_cuda, platform, machine)
    if override:
        if override not in variants:
            raise NoVariant(f"profile {profile!r} has no variant {override!r} "
                            f"(fix: --variant one of {', '.join(variants)})")
        return Choice(override, f"--variant {override} (this machine: {here})")
    fits = [v for v in variants.values() if v.auto and _platform_ok(v, platform, machine)]
    if driver_cuda is not None:
        gpu = [v for v in fits if v.cuda is not None and _key(v.cuda) <= _key(driver_cuda)]
        if gpu:
            best = max(gpu, key=lambda v: _key(v.cuda or "0"))
            return Choice(best.name, f"{here}: the highest CUDA variant it supports (cuda {best.cuda})")
    cpu = [v for v in fits if v.cuda is None]
    if cpu:
        reason = "no CUDA variant it supports" if driver_cuda else "no GPU driver"
        return Choice(cpu[0].name, f"{here}: {reason}, so the variant without cuda")
    needs = "; ".join(f"{v.name} needs {v.needs()}" for v in variants.values())
    raise NoVariant(f"profile {profile!r}: no variant fits this machine ({here}): {needs} "
                    f"(fix: add a variant for it to stack.toml, or pass --variant NAME to take one anyway)")


def platform_of(facts: Facts) -> tuple[str, str]:
    """(``sys.platform``, machine) of the target, from ``probe.py cuda``'s ``platform.system()``."""
    system = facts.system.lower()
    return {"windows": "win32"}.get(system, system), facts.machine


def for_facts(prof: Profile, facts: Facts, override: str | None = None) -> tuple[Profile, Choice]:
    """``prof`` as the variant that fits the probed machine (the driver library's CUDA, else nvidia-smi's,
    else none), with the reason; raises :class:`NoVariant`."""
    platform, machine = platform_of(facts)
    choice = choose(prof.variants, facts.driver.cuda, platform, machine=machine, override=override,
                    profile=prof.name)
    return prof.for_variant(choice.name), choice


def for_python(prof: Profile, python: str | Path, override: str | None = None) -> tuple[Profile, Choice]:
    """:func:`for_facts` with the facts ``probe.py cuda`` reads through ``python`` (the target's interpreter:
    the driver is the host's, the platform the target's): how diff and reproduce choose (sync, plan and
    verify also refuse a --variant of another platform, stacksync.sync.prepare)."""
    return for_facts(prof, probe_facts(python), override)
