"""What a lock must be before a sync trusts it, checked on every path (the no-op one included) and
before anything in the target changes. The parser (:mod:`stacksync.lock.lockfile`) reads what pip reads;
this module refuses what pip would take but stacksync must not act on:

* a lock with no requirements (empty, or only comments: a truncated write, a bad merge): synced with
  ``--yes`` it would remove every package of the target;
* a hash whose digest has the wrong length for its algorithm (``sha256`` is 64 hex digits): such a
  pin can never match a file, and the no-op path would otherwise call the target "in sync";
* a lock that does not pin a base package stack.toml names;
* an option line sync would not act on (:func:`option_problems`): sync hands pip files it writes from
  the pins, fetches from the index stack.toml names and installs hash-checked from its cache, so a
  ``--find-links``, ``--no-index``, ``--no-require-hashes``, ``--pre`` ... in a lock would be ignored
  without a word. ``--index-url`` / ``--extra-index-url`` / ``--trusted-host`` lines are kept when they
  are the profile's own index (what ``invoke compile`` writes with ``emit_index_urls = true``,
  credential-free) and refused when they name another; ``--require-hashes`` (sync always requires
  hashes) and ``-r`` / ``-c`` includes (followed by the parser) are fine;
* a lock that is not stacksync's output for this profile (:func:`requirements_lock_origin`: the header
  :func:`stacksync.compile.compiler.header` writes, naming the profile and its Python), and a ``deferred.txt``
  that pins anything but the profile's deferred packages. ``--accept-foreign-lock`` takes such a lock
  on purpose.

Other lock formats plug in through :data:`ORIGIN_CHECKS` (a predicate on the path, and the check);
files no predicate claims are not origin-checked here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from stacksync.core.errors import LockError, StacksyncError
from stacksync.core.redact import strip_credentials
from stacksync.lock.lockfile import LockProblems, Pin, RequirementsFile
from stacksync.lock.profile import Profile

__all__ = ["DIGEST_LENGTHS", "ORIGIN_CHECKS", "check", "empty_problems", "digest_problems", "option_problems",
           "looks_like_requirements_lock", "requirements_lock_origin", "deferred_pin_problems", "base_problems"]

#: hex digits of each hash algorithm pip accepts in a lock
DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
FOREIGN_FLAG = "--accept-foreign-lock"

OriginCheck = Callable[[Profile, RequirementsFile, str], list[LockError]]


def empty_problems(file: RequirementsFile) -> list[LockError]:
    if file.pins:
        return []
    return [LockError(file.path, 1, "the lock has no requirements (empty, or only comments: a truncated write "
                      "or a bad merge?); syncing it would remove every package of the target",
                      "restore it from version control, or invoke compile again")]


def digest_problems(pins: Iterable[Pin]) -> list[LockError]:
    out = []
    for pin in pins:
        for h in pin.hashes:
            algo, _, digest = h.partition(":")
            want = DIGEST_LENGTHS.get(algo)
            if want is not None and len(digest) != want:
                out.append(LockError(pin.path, pin.line, f"{pin.name}: {algo} digest has {len(digest)} hex digits, "
                                     f"not {want} ({h[:24]}...): no file can match it",
                                     "compile the lock again; never edit hashes by hand"))
    return out


#: options a lock may carry: sync requires hashes anyway; includes are followed by the parser
HARMLESS_OPTIONS = frozenset({"--require-hashes", "-r", "-c"})
#: options that name where packages come from: fine when they are the profile's own index
INDEX_OPTIONS = frozenset({"--index-url", "--extra-index-url", "--trusted-host"})
#: options pip reads on a requirement line itself (``--hash``) or that a build takes (``--config-settings``)
PER_REQUIREMENT = frozenset({"--hash", "--config-settings"})


def _profile_index_lines(profile: Profile) -> set[tuple[str, str]]:
    """(option, value) of the index lines ``invoke compile`` writes for this profile (credential-free),
    both as stack.toml spells them and expanded (a ``${VAR}`` not set now is left as written)."""
    configs = [profile.index]
    try:
        configs.append(profile.index.expanded(source=str(profile.stack_toml)))
    except StacksyncError:
        pass
    out: set[tuple[str, str]] = set()
    for cfg in configs:
        for line in replace(cfg, emit=True).lock_lines():
            name, _, value = line.partition(" ")
            out.add((name, value.rstrip("/")))
    return out


def option_problems(profile: Profile, file: RequirementsFile) -> list[LockError]:
    """Option lines of a lock (and options on its requirement lines) that sync would ignore."""
    allowed = _profile_index_lines(profile)
    found = [(o.name, o.value, o.line) for o in file.options]
    found += [(name, value, p.line) for p in file.pins for name, value in p.options if name not in PER_REQUIREMENT]
    out = []
    for name, value, line in sorted(found, key=lambda f: f[2]):
        shown = f"{name} {strip_credentials(value)}".strip()
        if name in HARMLESS_OPTIONS:
            continue
        if name in INDEX_OPTIONS:
            if (name, strip_credentials(value).rstrip("/")) in allowed:
                continue
            out.append(LockError(file.path, line, f"{shown}: not the index of profile {profile.name!r} "
                                 f"({profile.stack_toml}); sync fetches from stack.toml's index and does not read "
                                 "this line", f"remove the line, or set the index in {profile.stack_toml} and "
                                 f"invoke compile --profile {profile.name}"))
        elif name == "--no-require-hashes":
            out.append(LockError(file.path, line, f"{shown}: sync installs every pin hash-checked and does not "
                                 "read this line", "remove the line"))
        else:
            out.append(LockError(file.path, line, f"{shown}: sync does not act on this option in a lock (it "
                                 f"fetches from the index of {profile.stack_toml}, hash-checked, into its own "
                                 "cache, and installs from there)",
                                 f"remove the line; set the index in {profile.stack_toml} and invoke compile "
                                 f"--profile {profile.name}"))
    return out


def looks_like_requirements_lock(path: Path) -> bool:
    """A pip requirements-format lock (``requirements.txt``, ``deferred.txt``)."""
    return path.suffix == ".txt"


#: the fixed lines of :func:`stacksync.compile.compiler.header` (spelled here: importing compile, and the index
#: client with it, would cost the no-op sync ~25 ms; tests/test_crash_consistency.py holds the two equal)
GENERATED_LINE = "# This file is generated by stacksync; regenerate with:"


def _expected_header(profile: Profile, kind: str) -> list[str]:
    title = (f"Hashed lock of profile {profile.name!r}." if kind == "lock"
             else f"Deferred packages of profile {profile.name!r}: pinned in requirements.in,")
    wanted = [f"# {title}", GENERATED_LINE, f"#    invoke compile --profile {profile.name}"]
    if profile.python:
        wanted.append(f"# resolved for: Python {profile.python} on")
    return wanted


def requirements_lock_origin(profile: Profile, file: RequirementsFile, kind: str) -> list[LockError]:
    """A requirements lock must carry the header ``invoke compile`` writes for this profile (``kind``:
    ``lock`` for requirements.txt, ``deferred`` for deferred.txt)."""
    have = [line.rstrip() for line in file.header]
    for want in _expected_header(profile, kind):
        if not any(line == want or (want.endswith(" on") and line.startswith(want + " ")) for line in have):
            what = "requirements.txt" if kind == "lock" else "deferred.txt"
            return [LockError(file.path, 1, f"not stacksync's {what} for profile {profile.name!r}: its header "
                              f"lacks {want!r} (a requirements file from elsewhere, another profile's lock, or one "
                              "compiled for another Python)",
                              f"invoke compile --profile {profile.name}; or pass {FOREIGN_FLAG} to sync it as it is")]
    return []


#: (does this check apply to the file?, the check): the first that applies is used
ORIGIN_CHECKS: list[tuple[Callable[[Path], bool], OriginCheck]] = [
    (looks_like_requirements_lock, requirements_lock_origin),
]


def origin_problems(profile: Profile, file: RequirementsFile, kind: str) -> list[LockError]:
    for applies, origin_check in ORIGIN_CHECKS:
        if applies(Path(file.path)):
            return origin_check(profile, file, kind)
    return []


def deferred_pin_problems(profile: Profile, file: RequirementsFile) -> list[LockError]:
    """deferred.txt pins the profile's deferred packages and nothing else (a requirements.txt copied
    over it would install the whole stack without build isolation, last)."""
    allowed = profile.deferred_names
    return [LockError(p.path, p.line, f"{p.name} is not a deferred package of profile {profile.name!r} "
                      f"({profile.stack_toml}: [deferred.*])",
                      f"invoke compile --profile {profile.name}; or pass {FOREIGN_FLAG}")
            for p in file.pins if p.name not in allowed][:1]


def check(profile: Profile, lock: RequirementsFile, deferred: RequirementsFile | None, *,
          accept_foreign: bool = False) -> None:
    """Every check above, in that order; raises :class:`LockProblems` with the first problem found
    (one line: an empty lock is not also reported as foreign)."""
    checks: list[Callable[[], list[LockError]]] = [
        lambda: empty_problems(lock),
        lambda: empty_problems(deferred) if deferred is not None and profile.deferred else [],
        lambda: digest_problems([*lock.pins, *(deferred.pins if deferred else [])]),
        lambda: option_problems(profile, lock) + (option_problems(profile, deferred) if deferred else []),
        lambda: [] if accept_foreign else origin_problems(profile, lock, "lock"),
        lambda: [] if accept_foreign or deferred is None else (origin_problems(profile, deferred, "deferred")
                                                               or deferred_pin_problems(profile, deferred)),
        lambda: base_problems(profile, lock),
    ]
    for found in checks:
        problems = found()
        if problems:
            raise LockProblems(problems[:1])


def base_problems(profile: Profile, lock: RequirementsFile) -> list[LockError]:
    """Each base package of stack.toml is pinned in the lock (under some marker): a lock that misses
    one is another profile's, or stack.toml changed without a compile. A package the machine provides
    need not be (an image's own build is on no index: compile leaves it out)."""
    missing = [n for n in profile.base if not lock.get(n) and n not in profile.provided]
    if not missing:
        return []
    return [LockError(lock.path, 1, f"base package {missing[0]} ({profile.stack_toml}: base) is not pinned in "
                      "the lock", f"invoke compile --profile {profile.name}")]
