"""Profiles: a folder ``locks/<name>/`` with ``requirements.in``, ``stack.toml`` and the locks.

Loading validates everything up front; each mistake is one line naming the file, the key and the fix.

``stack.toml`` (every key optional except where noted)::

    description = "CPU demo stack"
    python = "3.11"                  # the X.Y the lock is compiled for and the target must run
    platforms = ["linux"]            # sys_platform values the lock is for (empty: any)
    backend = "pip-tools"            # "pip-tools" | "uv" | "auto"
    index_url = "https://${ART_USER}:${ART_TOKEN}@art.example/api/pypi/simple"
    extra_index_urls = []
    trusted_hosts = []
    emit_index_urls = false          # write (credential-free) index lines into the lock
    base = ["torch", "torchvision", "triton"]
    cuda = "12.1"                    # CUDA runtime the lock needs (doctor checks the driver)

    [smoke]                          # imports that must work after each phase
    base = ["torch"]
    rest = ["transformers"]
    deferred = ["flash_attn"]

    [deferred.flash-attn]            # kept out of the resolver, installed last, no build isolation
    requires = ["torch", "einops"]   # runtime requirements, resolved into the main lock
    imports = ["torch"]              # must import in the target before building
    build_requires = ["setuptools", "wheel", "packaging", "ninja", "psutil"]
    build_env = { MAX_JOBS = "4" }
    rebuild_on = ["torch"]           # base packages whose version change forces a rebuild

    # a prebuilt wheel, pinned by compile (sha256 in deferred.txt); {version} {torch_version}
    # {torch_mm} {cuda_major} {cuda_mm} {abi} {py} filled from the lock (see stacksync.build.prebuilt)
    wheels = "https://github.com/Dao-AILab/flash-attention/releases/download/v{version}/flash_attn-{version}+cu{cuda_major}torch{torch_mm}cxx11abi{abi}-cp{py}-cp{py}-linux_x86_64.whl"
    prebuilt = "prefer"              # "prefer": build when it is missing; "require": refuse
    wheel_vars = { abi = "FALSE" }   # values the template takes as given

    [vcs.my-trainer]                 # a VCS pin (vcs.txt) installed editable from a local checkout
    checkout = "/home/me/src/trainer"  # must be at the locked commit; without this, never editable

Build once, install everywhere (stacksync.build.wheelhouse, stacksync.build.publish)::

    wheelhouse = "/shared/wheelhouse"                   # default: .stacksync-cache/wheelhouse
    team_index = "https://${USER}:${TOKEN}@host/simple" # where sync looks after the wheelhouse
    team_upload_url = "https://${USER}:${TOKEN}@host/"  # where publish uploads (default: team_index
                                                        # without its trailing /simple)

One profile, every machine: ``provided`` and ``[variants.NAME]`` (stacksync.lock.variants).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from stacksync.core import defaults
from stacksync.core.errors import ProfileError, close_matches
from stacksync.core.redact import MissingVariable, env_refs, expand, register_refs, register_url, strip_credentials
from stacksync.lock.lockfile import LockProblems, parse
from stacksync.lock.variants import BACKENDS, Variant, overridden, parse_provided, parse_variants

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PHASES = ("base", "rest", "deferred")
DEFAULT_INDEX = "https://pypi.org/simple"

_TOP_KEYS = {"description", "python", "platforms", "backend", "index_url", "extra_index_urls",
             "trusted_hosts", "emit_index_urls", "base", "cuda", "smoke", "deferred", "vcs", "wheelhouse",
             "team_index", "team_upload_url", "provided", "variants"}
_DEFERRED_KEYS = {"requires", "imports", "build_requires", "build_env", "rebuild_on", "wheels", "prebuilt",
                  "wheel_vars", "untrusted"}
PREBUILT_MODES, UNTRUSTED_MODES = ("prefer", "require"), ("build", "refuse")
_PYTHON = re.compile(r"^3\.(\d+)$")


@dataclass(frozen=True)
class Deferred:
    """A package kept out of the resolver and installed last, without build isolation."""

    name: NormalizedName
    requires: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    build_requires: tuple[NormalizedName, ...] = ()
    build_env: Mapping[str, str] = field(default_factory=dict)
    rebuild_on: tuple[NormalizedName, ...] = ()
    #: URL template of a prebuilt wheel (stacksync.build.prebuilt), pinned by compile
    wheels: str | None = None
    prebuilt: str = "prefer"
    wheel_vars: Mapping[str, str] = field(default_factory=dict)
    untrusted: str = "build"  # a shared wheel not recorded in wheels.txt (stacksync.lock.wheelrecord)


@dataclass(frozen=True)
class IndexConfig:
    """Where packages come from. URLs may hold ``${VAR}`` references; they are expanded only when a
    command is built (:meth:`expanded`), and shown only redacted."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    emit: bool = False

    def expanded(self, environ: Mapping[str, str] | None = None, *, source: str = "stack.toml") -> IndexConfig:
        """Expand ``${VAR}`` references; when the profile names no index, honour ``PIP_INDEX_URL``,
        ``PIP_EXTRA_INDEX_URL`` and ``PIP_TRUSTED_HOST`` as pip would."""
        env = os.environ if environ is None else environ
        if self.index_url is None and not self.extra_index_urls:
            found = IndexConfig(
                env.get("PIP_INDEX_URL") or DEFAULT_INDEX,
                tuple(env.get("PIP_EXTRA_INDEX_URL", "").split()),
                tuple(env.get("PIP_TRUSTED_HOST", "").split()) or self.trusted_hosts,
                self.emit,
            )
        else:
            try:
                found = IndexConfig(
                    expand(self.index_url or DEFAULT_INDEX, env),
                    tuple(expand(u, env) for u in self.extra_index_urls),
                    self.trusted_hosts,
                    self.emit,
                )
            except MissingVariable as exc:
                raise ProfileError(source, "index_url", f"environment variable {exc.args[0]} is not set",
                                   f"export {exc.args[0]}=... before running") from None
        for url in (found.index_url, *found.extra_index_urls):
            register_url(url)  # a password written into the URL itself (or PIP_INDEX_URL's) is masked too
        return found

    def pip_args(self) -> list[str]:
        """Options for pip / pip-compile / uv (call on an :meth:`expanded` config)."""
        args = ["--index-url", self.index_url or DEFAULT_INDEX]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for host in self.trusted_hosts:
            args += ["--trusted-host", host]
        return args

    def lock_lines(self) -> list[str]:
        """Lines a lock carries when the profile asks for them: never with credentials."""
        if not self.emit:
            return []
        lines = [f"--index-url {strip_credentials(self.index_url or DEFAULT_INDEX)}"]
        lines += [f"--extra-index-url {strip_credentials(u)}" for u in self.extra_index_urls]
        lines += [f"--trusted-host {h}" for h in self.trusted_hosts]
        return lines


@dataclass(frozen=True)
class Profile:
    name: str
    folder: Path
    python: str | None = None
    platforms: tuple[str, ...] = ()
    backend: str = "pip-tools"
    base: tuple[NormalizedName, ...] = ()
    deferred: tuple[Deferred, ...] = ()
    smoke: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    index: IndexConfig = field(default_factory=IndexConfig)
    cuda: str | None = None
    description: str = ""
    #: VCS pins installed editable from a local checkout (``[vcs.NAME] checkout = "PATH"``)
    vcs_checkouts: Mapping[NormalizedName, Path] = field(default_factory=dict)
    #: wheelhouse folder as stack.toml gives it (stacksync.build.wheelhouse.resolve_dir applies precedence)
    wheelhouse: str | None = None
    #: the team index's simple URL (``${VAR}`` credentials) and its upload URL
    team_index: str | None = None
    team_upload_url: str | None = None
    #: packages the machine provides: never installed or removed by sync (``provided = ["torch"]``)
    provided: tuple[NormalizedName, ...] = ()
    variants: Mapping[str, Variant] = field(default_factory=dict)
    #: the variant this profile was made for by :meth:`for_variant` (its locks are in ``<folder>/<variant>``)
    variant: str | None = None

    @property
    def locks_folder(self) -> Path:
        return self.folder / self.variant if self.variant else self.folder

    def for_variant(self, name: str) -> Profile:
        """The profile as variant ``name`` overrides it (stacksync.lock.variants)."""
        v = self.variants[name]
        extra = v.extra_index_urls if v.extra_index_urls is not None else self.index.extra_index_urls
        index = replace(self.index, index_url=v.index_url or self.index.index_url,
                        extra_index_urls=(*((v.base_index_url,) if v.base_index_url else ()), *extra))
        return replace(self, variant=name, cuda=v.cuda or self.cuda, index=index, python=v.python or self.python,
                       platforms=self.platforms if v.platforms is None else v.platforms,
                       backend=v.backend or self.backend, provided=self.provided if v.provided is None else v.provided,
                       deferred=tuple(overridden(d, v.deferred.get(d.name, {})) for d in self.deferred))

    @property
    def requirements_in(self) -> Path:
        return self.folder / defaults.REQUIREMENTS_IN

    @property
    def stack_toml(self) -> Path:
        return self.folder / defaults.STACK_TOML

    @property
    def lock_path(self) -> Path:
        return self.locks_folder / defaults.LOCK_TXT

    @property
    def deferred_path(self) -> Path:
        return self.locks_folder / defaults.DEFERRED_TXT

    @property
    def deferred_names(self) -> set[NormalizedName]:
        return {d.name for d in self.deferred}

    def smoke_modules(self, through: str = PHASES[-1]) -> list[str]:
        """The smoke modules of the phases up to and including ``through``, in phase order, each once."""
        modules: list[str] = []
        for phase in PHASES[:PHASES.index(through) + 1]:
            modules += [m for m in self.smoke.get(phase, ()) if m not in modules]
        return modules

    def deferred_by_name(self, name: str) -> Deferred:
        want = canonicalize_name(name)
        for d in self.deferred:
            if d.name == want:
                return d
        raise KeyError(name)


def available(locks_dir: Path | None = None) -> list[str]:
    root = locks_dir or defaults.find_locks_dir()
    if root is None or not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / defaults.STACK_TOML).is_file())


def load(name_or_path: str | os.PathLike[str], locks_dir: Path | None = None) -> Profile:
    """Load and validate a profile by name (``locks/<name>``) or by folder path (which needs no project
    folder)."""
    if not str(name_or_path).strip():  # `-p "$PROFILE"` with PROFILE unset must not mean the default
        raise ProfileError(locks_dir or "profile", "", "the profile name is empty",
                           "name a profile (-p NAME), or leave the option out for the default")
    given = Path(name_or_path)
    root = locks_dir or given.parent
    try:
        if given.is_dir() and (given / defaults.STACK_TOML).exists():
            folder = given
        else:
            root = locks_dir or defaults.locks_dir()
            folder = root / str(name_or_path)
        toml_path = folder / defaults.STACK_TOML
        found = toml_path.is_file()
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte
        root = locks_dir or defaults.find_locks_dir() or Path.cwd()
        shown = str(name_or_path)
        shown = shown if len(shown) <= 60 else f"{shown[:40]}...({len(shown)} characters)"
        raise ProfileError(root, "", f"profile {shown!r} is not a usable folder name "
                           f"({getattr(exc, 'strerror', None) or exc})",
                           f"pick one of: {', '.join(available(root)) or '(none)'}") from None
    if not found:
        names = available(root)
        hint = close_matches(str(name_or_path), names, n=1)
        fix = f"did you mean {hint[0]!r}?" if hint else f"pick one of: {', '.join(names) or '(none)'}"
        raise ProfileError(toml_path, "", f"unknown profile {str(name_or_path)!r}", fix)
    try:
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(toml_path, "", f"not valid TOML: {exc}", "fix the syntax") from exc
    except UnicodeDecodeError as exc:
        raise ProfileError(toml_path, "", f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
                           "save it as UTF-8 (TOML files are UTF-8)") from None
    except OSError as exc:
        raise ProfileError(toml_path, "", f"cannot read it ({exc.strerror or exc})", "check the file") from None
    except RecursionError:  # tomllib recurses per nesting level: [[[[...]]]] 3,000 deep
        raise ProfileError(toml_path, "", "nested too deeply to read (arrays or tables inside each other "
                           "thousands of levels deep)", "write the profile's keys as flat tables") from None
    profile = _build(folder.name, folder, toml_path, data)
    _check_against_inputs(profile)
    return profile


def _build(name: str, folder: Path, path: Path, data: dict[str, Any]) -> Profile:
    _no_unknown(path, "", data, _TOP_KEYS)
    python = _opt_str(path, "python", data)
    if python is not None and not _PYTHON.match(python):
        raise ProfileError(path, "python", f"{python!r} is not a CPython X.Y version", 'write e.g. python = "3.11"')
    backend = _opt_str(path, "backend", data) or "pip-tools"
    if backend not in BACKENDS:
        raise ProfileError(path, "backend", f"unknown backend {backend!r}", f"use one of {', '.join(BACKENDS)}")
    index = IndexConfig(
        _opt_str(path, "index_url", data),
        _str_list(path, "extra_index_urls", data),
        _str_list(path, "trusted_hosts", data),
        bool(_typed(path, "emit_index_urls", data, bool, False)),
    )
    for key, url in [("index_url", index.index_url or ""), *(("extra_index_urls", u) for u in index.extra_index_urls)]:
        _check_url_credentials(path, key, url)
    base = tuple(canonicalize_name(n) for n in _str_list(path, "base", data))
    smoke_raw = _typed(path, "smoke", data, dict, {})
    _no_unknown(path, "smoke", smoke_raw, set(PHASES))
    smoke = {phase: _str_list(path, f"smoke.{phase}", smoke_raw, key=phase) for phase in PHASES}
    deferred_raw = _typed(path, "deferred", data, dict, {})
    deferred = tuple(_deferred(path, dname, table, base) for dname, table in deferred_raw.items())
    overlap = set(base) & {d.name for d in deferred}
    if overlap:
        raise ProfileError(path, "deferred", f"{', '.join(sorted(overlap))} is both base and deferred",
                           "a package is installed in one phase: remove it from one list")
    for key in ("team_index", "team_upload_url"):
        _check_url_credentials(path, key, _opt_str(path, key, data) or "")
    for key in ("index_url", "extra_index_urls", "team_index", "team_upload_url"):
        for ref in _str_list(path, key, data) if key == "extra_index_urls" else [_opt_str(path, key, data) or ""]:
            # masked in every line printed from now on, with or without a URL around the value
            register_refs(ref)
    cuda = _opt_str(path, "cuda", data)
    if cuda is not None and not re.match(r"^\d+\.\d+$", cuda):
        raise ProfileError(path, "cuda", f"{cuda!r} is not a CUDA X.Y version", 'write e.g. cuda = "12.1"')
    vcs_raw = _typed(path, "vcs", data, dict, {})
    checkouts: dict[NormalizedName, Path] = {}
    for vname, table in vcs_raw.items():
        if not isinstance(table, dict):
            raise ProfileError(path, f"vcs.{vname}", "must be a table", f'write [vcs.{vname}] with checkout = "PATH"')
        _no_unknown(path, f"vcs.{vname}", table, {"checkout"})
        where = _opt_str(path, f"vcs.{vname}.checkout", {f"vcs.{vname}.checkout": table.get("checkout")})
        if not where:
            raise ProfileError(path, f"vcs.{vname}.checkout", "missing", 'write checkout = "/path/to/the/checkout"')
        folder_path = Path(os.path.expanduser(where))
        checkouts[canonicalize_name(vname)] = folder_path if folder_path.is_absolute() else (folder / folder_path)
    return Profile(
        name=name, folder=folder, python=python, vcs_checkouts=checkouts,
        platforms=_str_list(path, "platforms", data), backend=backend, base=base, deferred=deferred,
        smoke=smoke, index=index, cuda=cuda, description=_opt_str(path, "description", data) or "",
        wheelhouse=_opt_str(path, "wheelhouse", data), team_index=_opt_str(path, "team_index", data),
        team_upload_url=_opt_str(path, "team_upload_url", data),
        provided=parse_provided(path, "provided", data.get("provided")) or (),
        variants=parse_variants(path, data.get("variants"), {d.name for d in deferred}),
    )


def _deferred(path: Path, name: str, table: Any, base: tuple[NormalizedName, ...]) -> Deferred:
    key = f"deferred.{name}"
    if not isinstance(table, dict):
        raise ProfileError(path, key, "must be a table", f"write [{key}] with requires = [...]")
    _no_unknown(path, key, table, _DEFERRED_KEYS)
    requires = _str_list(path, f"{key}.requires", table, key="requires")
    for req in requires:
        try:
            Requirement(req)
        except InvalidRequirement as exc:
            raise ProfileError(path, f"{key}.requires", f"{req!r} is not a requirement ({str(exc).splitlines()[0]})",
                               'write e.g. "torch" or "einops>=0.6"') from exc
    build_env = _typed(path, f"{key}.build_env", table, dict, {}, key="build_env")
    if not all(isinstance(v, str) for v in build_env.values()):
        raise ProfileError(path, f"{key}.build_env", "values must be strings", 'write MAX_JOBS = "4"')
    rebuild_on = _str_list(path, f"{key}.rebuild_on", table, key="rebuild_on")
    wheels = table.get("wheels")
    if wheels is not None and not isinstance(wheels, str):
        raise ProfileError(path, f"{key}.wheels", "must be a URL template string",
                           'write wheels = "https://host/{version}/name-{version}-cp{py}-cp{py}-linux_x86_64.whl"')
    prebuilt, untrusted = table.get("prebuilt", "prefer"), table.get("untrusted", "build")
    for part, value, modes in (("prebuilt", prebuilt, PREBUILT_MODES), ("untrusted", untrusted, UNTRUSTED_MODES)):
        if value not in modes:
            raise ProfileError(path, f"{key}.{part}", f"unknown mode {value!r}", f"use one of {', '.join(modes)}")
    wheel_vars = _typed(path, f"{key}.wheel_vars", table, dict, {}, key="wheel_vars")
    if not all(isinstance(v, str) for v in wheel_vars.values()):
        raise ProfileError(path, f"{key}.wheel_vars", "values must be strings", 'write abi = "FALSE"')
    required = [canonicalize_name(Requirement(r).name) for r in requires]
    default_rebuild = tuple(n for n in required if n in base)
    return Deferred(
        name=canonicalize_name(name),
        requires=requires,
        imports=_str_list(path, f"{key}.imports", table, key="imports"),
        build_requires=tuple(canonicalize_name(n) for n in _str_list(path, f"{key}.build_requires", table,
                                                                     key="build_requires")),
        build_env=dict(build_env),
        rebuild_on=tuple(canonicalize_name(n) for n in rebuild_on) or default_rebuild,
        wheels=wheels, prebuilt=str(prebuilt), wheel_vars=dict(wheel_vars), untrusted=str(untrusted),
    )


def _check_against_inputs(profile: Profile) -> None:
    """base and deferred names must be things the profile asks for."""
    src = profile.requirements_in
    if not src.is_file():
        raise ProfileError(src, "", "file not found", f"create it with the packages of profile {profile.name!r}")
    try:
        wanted = parse(src).names()
    except LockProblems as exc:  # the first problem, with its file:line and fix
        first = exc.problems[0]
        raise ProfileError(f"{first.path}:{first.line}", "", first.message, first.fix) from None
    for d in profile.deferred:
        if d.name not in wanted:
            raise ProfileError(profile.stack_toml, f"deferred.{d.name}",
                               f"{d.name} is not in {defaults.REQUIREMENTS_IN}",
                               f"add {d.name}==VERSION to {src}")
    _check_names(profile, wanted)


def _check_names(profile: Profile, wanted: set[NormalizedName]) -> None:
    """``base`` names must be packages of requirements.in or the lock; ``[smoke]`` and deferred
    ``imports`` must be import names of those packages (``base = ["pytorch"]`` would leave the base
    phase empty and its smoke unrun, and verify would still call the target a twin)."""
    from stacksync.lock import knownstacks

    known: set[NormalizedName] = set(wanted)
    for d in profile.deferred:
        known.update(canonicalize_name(Requirement(r).name) for r in d.requires)
        known.update(d.build_requires)
    locked: set[NormalizedName] | None = None

    def lock_names() -> set[NormalizedName]:
        nonlocal locked
        if locked is None:
            locked = set()
            for path in (profile.lock_path, profile.deferred_path):
                if path.is_file():
                    try:
                        locked |= parse(path, lock=True).names()
                    except LockProblems:
                        pass  # sync and compile report a broken lock with its line
        return locked

    for name in profile.base:
        if name not in known and name not in lock_names():
            raise ProfileError(profile.stack_toml, "base", f"{name!r} is not a package of "
                               f"{defaults.REQUIREMENTS_IN} or the lock", _did_you_mean(name, known | lock_names(),
                               f"add {name}==VERSION to {profile.requirements_in}, or remove it from base"))
    checks = [(f"smoke.{phase}", m) for phase in PHASES for m in profile.smoke.get(phase, ())]
    checks += [(f"deferred.{d.name}.imports", m) for d in profile.deferred for m in d.imports]
    if not checks:
        return
    modules = knownstacks.module_names(known)
    for key, module in checks:
        top = module.split(".", 1)[0]
        if module in modules or top in modules:
            continue
        modules = knownstacks.module_names(known | lock_names())
        if module in modules or top in modules:
            continue
        # An import name stacksync does not know (a project whose module is named otherwise) is
        # accepted; one that is close to a known module is a typo (pytorch, troch, pyyaml).
        close = close_matches(module, sorted(modules), n=1, cutoff=0.75)
        if close:
            raise ProfileError(profile.stack_toml, key, f"{module!r} is not the import name of a package in "
                               f"{defaults.REQUIREMENTS_IN} or the lock", f"did you mean {close[0]!r}?")


def _did_you_mean(word: str, choices: set[str], otherwise: str) -> str:
    close = close_matches(word, sorted(choices), n=1, cutoff=0.6)
    if not close:
        close = [c for c in sorted(choices) if word in c or c in word][:1]
    return f"did you mean {close[0]!r}?" if close else otherwise


def _check_url_credentials(path: Path, key: str, url: str) -> None:
    from urllib.parse import urlsplit

    netloc = urlsplit(url).netloc
    if "@" in netloc:
        userinfo = netloc.rsplit("@", 1)[0]
        literal = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", "", userinfo).replace(":", "")
        if literal and not env_refs(userinfo):
            raise ProfileError(path, key, "the URL holds a literal credential",
                               "write it as ${ENV_VAR} references, e.g. https://${USER}:${TOKEN}@host/simple")
        if ":" in userinfo and not env_refs(userinfo.split(":", 1)[1]):
            raise ProfileError(path, key, "the URL holds a literal password",
                               "use a ${ENV_VAR} reference for the password")


def _no_unknown(path: Path, where: str, table: dict[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            close = close_matches(key, sorted(allowed), n=1)
            fix = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(allowed))}"
            raise ProfileError(path, f"{where}.{key}" if where else key, "unknown key", fix)


def _typed(path: Path, dotted: str, table: dict[str, Any], kind: type, default: Any, *, key: str | None = None) -> Any:
    value = table.get(key or dotted, default)
    if not isinstance(value, kind):
        raise ProfileError(path, dotted, f"must be a {kind.__name__}, found {type(value).__name__}")
    return value


def _opt_str(path: Path, key: str, table: dict[str, Any]) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise ProfileError(path, key, f"must be a string, found {type(value).__name__}")
    return value


def _str_list(path: Path, dotted: str, table: dict[str, Any], *, key: str | None = None) -> tuple[str, ...]:
    value = table.get(key or dotted, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(path, dotted, "must be a list of strings", f'write {key or dotted} = ["name", ...]')
    return tuple(value)
