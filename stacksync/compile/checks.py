"""What ``invoke compile`` checks in ``requirements.in`` before the resolver runs, and how a resolver
failure is turned back into the ``requirements.in`` line that caused it (pure; no process).

Before: lines no resolver can lock are refused with their ``file:line`` and the fix for that line
(a conda ``name @ file:///croot/...`` path that is not on this machine, an editable, a VCS reference
without a commit). After: pip-compile's / uv's error text names a requirement (``No matching
distribution found for torch==9``, ``Cannot install a and b because these package versions have
conflicting dependencies``, a URL it cannot fetch); :func:`explain_failure` finds the input line that
asks for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from stacksync.core.errors import CommandFailed, LockError
from stacksync.lock import reqshape
from stacksync.lock.lockfile import LockProblems, Pin

__all__ = ["precheck", "explain_failure", "classify", "reasoning"]


def _fix_for_local_file(pin: Pin) -> str:
    version = pin.file_version
    if version:
        return f"write {pin.name}=={version} (the version its file name says)"
    return (f"write {pin.name}==VERSION (pip freeze in a conda env prints build paths; "
            "`invoke freeze --from FREEZE --profile NAME` repairs them)")


def precheck(pins: Sequence[Pin]) -> None:
    """Refuse, before resolving, what no resolver can lock; every problem, each with its line."""
    problems: list[LockError] = []
    for pin in pins:
        if pin.editable:
            if pin.is_vcs and pin.commit:
                fix = f"write it without -e, at its commit: {pin.name} @ {pin.url.split('#', 1)[0] if pin.url else ''}"
            elif pin.is_vcs:
                fix = f"pin a commit and drop -e: {pin.name} @ git+URL@<40-hex sha>"
            else:
                fix = (f"commit and push it, then pin {pin.name} @ git+URL@<sha>; or install it separately "
                       "in the twin")
            problems.append(LockError(pin.path, pin.line, f"{pin.requirement}: an editable cannot be locked or "
                                      "hash-checked; the twin installs VCS pins at their commit, not editable", fix))
        elif pin.is_vcs and pin.commit is None:
            rev = f"at {pin.revision!r} (a branch or tag)" if pin.revision else "without a commit"
            problems.append(LockError(pin.path, pin.line, f"{pin.name}: VCS reference {rev}: the lock would move "
                                      "with the branch", f"append @<40-hex commit sha> to the URL of {pin.name}"))
        elif pin.is_local_file and pin.url is not None:
            path = Path(unquote(urlsplit(pin.url).path))
            if not path.exists():
                conda = any(d in pin.url for d in ("/croot/", "/conda-bld/", "/feedstock_root/", "/tmp/build/"))
                what = "a conda build path" if conda else "a local path checkout on the baseline's machine"
                problems.append(LockError(pin.path, pin.line, f"{pin.name} @ {pin.url}: {path} is not on this "
                                          f"machine ({what})", _fix_for_local_file(pin)))
    if problems:
        raise LockProblems(problems)


_NAMED = [
    re.compile(r"No matching distribution found for ([^\s;]+)", re.I),
    re.compile(r"Could not find a version that satisfies the requirement ([^\s;(]+)", re.I),
    re.compile(r"Package '([A-Za-z0-9._-]+)' requires a different Python", re.I),
    re.compile(r"Failed to build '([A-Za-z0-9._-]+)'", re.I),
    re.compile(r"Failed to (?:download and )?build `([A-Za-z0-9._-]+)", re.I),
    re.compile(r"there is no version of ([A-Za-z0-9._-]+)", re.I),
    re.compile(r"Because (?:only )?(?:all versions of )?([A-Za-z0-9._-]+)", re.I),  # uv: "Because foo==9 was not..."
    re.compile(r"No solution found when resolving dependencies:.*?\b([A-Za-z0-9._-]+)(?:[=<>!~]=|\s)", re.I | re.S),
    re.compile(r"Cannot install ([A-Za-z0-9._-]+)", re.I),
]

#: failure classes, most specific first: (class, phrases of pip / pip-compile / uv output that show it)
_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("credentials", ("401 unauthorized", "403 forbidden", "lack of valid authentication credentials",
                     "401 client error", "403 client error", "user for ")),
    ("vcs", ("git operation failed", "when git clone", "git clone --filter", "unable to access '",
             "could not read username for", "repository not found")),
    ("network", ("failed to establish a new connection", "connection refused", "tcp connect error",
                 "temporary failure in name resolution", "name or service not known", "could not resolve host",
                 "read timed out", "connecttimeouterror", "failed to fetch:", "network is unreachable")),
    ("python", ("requires a different python", "requires python", "does not satisfy python",
                "the current python version", "no wheels with a matching python abi tag",
                "no wheels with a matching python implementation tag", "no wheels with a matching python version")),
    ("platform", ("no wheels with a matching platform tag",)),
    ("build", ("failed to build", "subprocess-exited-with-error", "metadata-generation-failed",
               "build backend failed", "backendunavailable", "failed to download and build")),
    ("conflict", ("conflicting dependencies", "the conflict is caused by", "depend on", "depends on")),
    ("no-version", ("no matching distribution found", "could not find a version", "there is no version of",
                    "was not found in the package registry", "was not found in the provided package locations",
                    "no solution found")),
)
_NOISE = ("traceback", "file \"", "^", "the above exception", "during handling", "--- stderr", "[notice]",
          "return ", "raise ", "warning: retrying")
_EXC_LINE = re.compile(r"^(?:pip\._\S+|\w+Error|\w+Exception)(?:\.\w+)*: (.+)$")
_PY_VERSION = re.compile(r"(?:current Python version \(|different Python: |You require CPython )(\d+\.\d+)")
_REQ_INFO = re.compile(r"RequirementInformation\(requirement=\w+\('([^']+)'\), parent=(?:None|\w+\('([^']+)'\))\)")
_PY_NEEDED = re.compile(r"Python ?([<>=!~]=?\s*\d+(?:\.\d+)*)|not in '([^']+)'")


def classify(output: str) -> str:
    """The class of a resolver failure: ``credentials``, ``vcs``, ``network``, ``python``,
    ``platform``, ``build``, ``conflict``, ``no-version`` or ``other``."""
    low = output.lower()
    for kind, phrases in _CLASSES:
        if any(p in low for p in phrases):
            if kind == "conflict" and "python" in low and ("requires python" in low or "depends on python" in low):
                return "python"
            return kind
    return "other"


def reasoning(output: str, limit: int = 6) -> list[str]:
    """The resolver's own explanation, bounded: uv's ``error:`` / ``cause:`` / ``And because`` /
    ``hint:`` lines; pip's ``ERROR:`` and conflict lines and the message of its last exception
    (pip-tools prints pip's traceback); the last connection warning."""
    lines = [ln.strip() for ln in output.splitlines()]
    kept: list[str] = []
    retry = [ln for ln in lines if ln.lower().startswith("warning: retrying")]
    for ln in lines:
        low = ln.lower()
        if not ln or low.startswith(_NOISE) or ln.startswith(("#", "Resolved ", "Updating ")):
            continue
        exc = _EXC_LINE.match(ln)
        if exc is not None:
            text = exc.group(1)
            if text.startswith("[RequirementInformation"):
                kept += [d for d in _derivation(text) if d not in kept]
                continue
            if "for help visit" in text:
                continue
            ln = text
        elif not (low.startswith(("error:", "cause:", "and because", "because", "hint:", "the conflict",
                                   "the user requested", "fatal:")) or " depends on " in low
                  or low.startswith("error ")):
            continue
        if ln not in kept:
            kept.append(ln)
    if retry:
        kept.append(retry[-1])
    return [k[:300] for k in kept[-limit:]]


def _derivation(text: str) -> list[str]:
    """pip's ``ResolutionImpossible([RequirementInformation(...)])`` (what pip-tools' traceback keeps
    when ``--quiet`` hides "The conflict is caused by:") in pip's own words."""
    out = []
    for requirement, parent in _REQ_INFO.findall(text):
        if requirement.startswith(">") or requirement.startswith("<"):
            requirement = f"Python{requirement}"  # RequiresPythonRequirement('>=3.12')
        if not parent:
            out.append(f"The user requested {requirement}")
            continue
        found = reqshape.version_from_filename(parent) if "/" in parent else None
        who = f"{found[0]} {found[1]}" if found else parent.split("/")[-1]
        out.append(f"{who} depends on {requirement}")
    return out


def explain_failure(exc: CommandFailed, pins: Sequence[Pin], tool: str, *, python: str | None = None,
                    platforms: Sequence[str] = ()) -> LockError | None:
    """The ``requirements.in`` line a resolver failure is about, as one :class:`LockError`: the class
    of failure, the resolver's reasoning (a few lines) and a fix for that class naming the line(s);
    ``None`` when the output names no input line. ``python``: the profile's Python X.Y."""
    output = exc.output
    kind = classify(output)
    why = reasoning(output)
    said = ("\n  " + "\n  ".join(why)) if why else ""
    tail = [ln.strip() for ln in output.strip().splitlines() if ln.strip()][-12:]
    by_name = {p.name: p for p in pins}
    candidates: list[str] = []
    for pattern in _NAMED:
        candidates += [m.group(1) for m in pattern.finditer(output)]
    for pin in pins:  # a URL it could not fetch names no project
        if pin.url and any(u in output for u in _url_forms(pin)):
            what = "git could not fetch" if pin.is_vcs else f"{tool} could not get"
            return LockError(pin.path, pin.line, f"{what} {pin.name} @ {pin.url} ({_KIND_TEXT.get(kind, kind)}):{said}",
                             _fix_for(pin, kind, output, python, platforms, []))
    named: list[Pin] = []
    for raw in candidates:
        name = canonicalize_name(re.split(r"[\[=<>!~;@ ]", raw, maxsplit=1)[0])
        found = by_name.get(name)
        if found is not None and found not in named:
            named.append(found)
    if not named:
        named = [pin for pin in pins if any(re.search(rf"\b{re.escape(pin.name)}\b", ln, re.I) or
                                            re.search(rf"\b{re.escape(pin.name.replace('-', '_'))}\b", ln, re.I)
                                            for ln in (*why, *tail))][:1]
    if not named:
        return None
    if kind == "conflict":  # every input line the derivation names
        named += [p for p in pins if p not in named and re.search(rf"(?<![\w.-]){re.escape(p.name)}(?![\w-])",
                                                                 "\n".join(why), re.I)]
    first = named[0]
    return LockError(first.path, first.line, f"{tool} cannot resolve {first.requirement}: "
                     f"{_KIND_TEXT.get(kind, 'resolution failed')}{said}",
                     _fix_for(first, kind, output, python, platforms, named[1:]))


def _url_forms(pin: Pin) -> list[str]:
    """How a resolver may quote ``pin``'s URL: as written, and for VCS as git sees it (no ``git+``,
    no ``@revision``: pip clones the bare URL, then checks the commit out)."""
    url = (pin.url or "").split("#", 1)[0]
    forms = [url]
    if pin.is_vcs:
        bare = url.split("+", 1)[1] if "+" in url.split("://", 1)[0] else url
        if pin.revision or pin.commit:
            bare = bare.rsplit("@", 1)[0]
        forms.append(bare + " ")
        forms.append(bare + "/")
    return forms


_KIND_TEXT = {
    "credentials": "the index refused the credentials", "vcs": "the git repository could not be fetched",
    "network": "the index could not be reached", "python": "no version for this Python",
    "platform": "no wheel for this platform", "build": "a source distribution failed to build while resolving",
    "conflict": "conflicting requirements", "no-version": "no such version on the index",
    "other": "resolution failed",
}


def _fix_for(pin: Pin, kind: str, output: str, python: str | None, platforms: Sequence[str],
             others: Sequence[Pin]) -> str:
    if kind == "credentials":
        return ("check the user / token variables the index URL in stack.toml names (${USER}:${TOKEN}), and that "
                "they may read this index")
    if kind == "vcs":
        return (f"check that the URL of {pin.name} is right and that this machine can reach it (git clone it by "
                f"hand; a private repository needs a token in the URL as ${{VAR}}), or pin a released version")
    if kind == "network":
        return ("check the network, proxy and the index_url in stack.toml (is the index up and reachable from "
                "here?), then compile again")
    if kind == "python":
        found = _PY_VERSION.search(output)
        here = python or (found.group(1) if found else "the profile's")
        need = _PY_NEEDED.search(output)
        tags = re.search(r"with the following Python ABI tags?: (.+)", output)
        needed = f" ({pin.name} needs Python {(need.group(1) or need.group(2)).strip()})" if need else \
            (f" ({pin.name} has wheels for {tags.group(1).strip()} only)" if tags else "")
        return (f"the cause is the Python version{needed}: the lock is for Python {here}; set python = \"X.Y\" in "
                f"stack.toml to the baseline's Python (invoke freeze --from FILE --python-version X.Y), or pin a "
                f"version of {pin.name} that supports Python {here} at {pin.where}")
    if kind == "platform":
        hint = re.search(r"on the following platforms?: (.+)", output)
        has = f" (the index has wheels for {hint.group(1).strip()})" if hint else ""
        where = ", ".join(platforms) or "this platform"
        return (f"{pin.name} has no wheel for {where}{has}: pin a version of {pin.name} with a wheel for it at "
                f"{pin.where}, or set platforms in stack.toml to the baseline's platform")
    if kind == "build":
        return (f"{pin.name} (or a dependency) is an sdist that must be built to read its metadata: pin a version "
                f"with a wheel at {pin.where}, or make it buildable here (its build requirements; declare it in "
                f"[deferred] when it builds against torch)")
    if kind == "conflict":
        lines = ", ".join(f"{p.requirement} ({p.where})" for p in [pin, *others])
        return (f"relax one of {lines} so that both can be installed" if others else
                f"relax {pin.requirement} (or what it conflicts with) so that both can be installed")
    local = re.search(r"\+(cu\d+|cpu|rocm[\d.]+)$", pin.version or "")
    if kind == "no-version" and local is not None:
        url = f"https://download.pytorch.org/whl/{local.group(1)}"
        return (f"{pin.name}=={pin.version} is a build the PyTorch index serves, not this index: add "
                f"extra_index_urls = [\"{url}\"] in stack.toml, or pin {pin.name}=={(pin.version or '').split('+')[0]} "
                f"at {pin.where}")
    if kind == "no-version" and "(from versions: none)" in output:
        return (f"the index serves no file of {pin.name} that installs here: check the name at {pin.where}, and "
                f"which Python / platform its files are for (Python {python or '?'}, "
                f"{', '.join(platforms) or 'this platform'} here)")
    if kind == "no-version" and pin.version is not None:
        return f"pin a version of {pin.name} the index serves (see the index's page for {pin.name})"
    if kind == "no-version":
        return f"check the name of {pin.name}, and that the index serves it"
    if pin.version is not None:
        return f"pin a version of {pin.name} the index serves (see the index's page for {pin.name})"
    return f"check the name and version of {pin.name}, and that the index serves it"
