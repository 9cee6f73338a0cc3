"""Packages the machine provides (``provided = ["torch"]`` in a profile or a variant): a torch built into
an image (NGC), a system site-packages seen through a ``--system-site-packages`` venv. Sync never installs
or removes them; the lock's pins of them are left out (the plan shows them apart); ``provided.txt`` beside
the lock (``invoke compile --provided-from PYTHON``) records the versions the lock was made against, and a
target whose machine now has other versions is refused with what changed."""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from stacksync.core.errors import StacksyncError
from stacksync.lock.profile import Profile

__all__ = ["PROVIDED_TXT", "ProvidedChanged", "provided_path", "read_provided", "parse_provided", "render_provided",
           "check", "from_versions", "brought_along"]

PROVIDED_TXT = "provided.txt"


class ProvidedChanged(StacksyncError):
    """The machine no longer has the versions of its provided packages that the lock was made against."""


def provided_path(prof: Profile) -> Path:
    return prof.locks_folder / PROVIDED_TXT


def render_provided(prof: Profile, versions: Mapping[NormalizedName, str], source: str) -> str:
    lines = [f"# Packages the machine provides for profile {prof.name!r}"
             + (f" variant {prof.variant!r}" if prof.variant else "") + f", read from {source}",
             f"#    invoke compile --profile {prof.name} --provided-from PYTHON",
             "# sync keeps them and refuses a machine with other versions."]
    return "\n".join([*lines, *(f"{n}=={versions[n]}" for n in sorted(versions))]) + "\n"


def read_provided(path: Path) -> dict[NormalizedName, str]:
    """``name==version`` lines (``#`` comments) of a provided.txt; empty when there is none."""
    return parse_provided(path.read_text(encoding="utf-8"), path) if path.is_file() else {}


def parse_provided(text: str, path: Path) -> dict[NormalizedName, str]:
    found: dict[NormalizedName, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise StacksyncError(f"{path}:{number}: {raw.strip()!r} is not name==version "
                                 f"(fix: invoke compile --provided-from PYTHON rewrites it)")
        found[canonicalize_name(name.strip())] = version.strip()
    return found


def check(prof: Profile, installed: Mapping[NormalizedName, str], target: str) -> dict[NormalizedName, str]:
    """The provided packages as the target has them; refuses when one is missing, or when provided.txt
    records another version than the target's (pure but for reading provided.txt)."""
    recorded = read_provided(provided_path(prof))
    missing = [n for n in prof.provided if n not in installed]
    if missing:
        raise ProvidedChanged(f"{target}: {', '.join(missing)} should be provided by the machine but "
                              f"{'is' if len(missing) == 1 else 'are'} not installed there (fix: sync a target "
                              f"that sees the image's packages, e.g. a venv made with --system-site-packages, "
                              f"or remove {', '.join(missing)} from provided in {prof.stack_toml})")
    changed = [f"{n} {recorded[n]} -> {installed[n]}" for n in prof.provided
               if n in recorded and recorded[n] != installed[n]]
    if changed:
        raise ProvidedChanged(f"{target}: the machine's provided packages changed since the lock was made "
                              f"({'; '.join(changed)}; {provided_path(prof)}) (fix: invoke compile --profile "
                              f"{prof.name} --provided-from {target}, then sync again)")
    return {n: installed[n] for n in prof.provided}


def from_versions(prof: Profile, installed: Mapping[NormalizedName, str], source: str) -> str:
    """provided.txt for ``prof`` from the versions an interpreter has (``--provided-from``)."""
    missing = [n for n in prof.provided if n not in installed]
    if missing:
        raise StacksyncError(f"{source}: has no {', '.join(missing)}, which profile {prof.name!r} says the machine "
                             f"provides (fix: --provided-from the image's python, or fix provided in "
                             f"{prof.stack_toml})")
    return render_provided(prof, {n: installed[n] for n in prof.provided}, source)


def brought_along(provided: Iterable[NormalizedName], requires: Mapping[NormalizedName, Sequence[str]],
                  locked: Container[NormalizedName], environment: Mapping[str, str]) -> list[NormalizedName]:
    """What the provided packages need (their Requires-Dist, transitively, for ``environment``) that is
    installed (a key of ``requires``) and not locked: an image's torch built on no index is left out of
    the resolution, so its dependencies come from the image with it and are the machine's too."""
    found: list[NormalizedName] = []
    todo = [n for n in provided if n in requires]
    seen = set(todo)
    while todo:
        for line in requires[todo.pop()]:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({**environment, "extra": ""}):
                continue
            name = canonicalize_name(req.name)
            if name in seen or name not in requires or name in locked:
                continue
            seen.add(name)
            found.append(name)
            todo.append(name)
    return sorted(found)
