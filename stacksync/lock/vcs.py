"""VCS pins at a commit: reading them, and what a git checkout says (pure file reads, no git process).

A VCS pin (``name @ git+https://host/org/repo.git@<40-hex>``) cannot be covered by ``--hash``: pip
refuses to hash-check a VCS checkout. stacksync therefore keeps them apart:

- ``invoke compile`` resolves them with everything else (their dependencies are locked and hashed),
  then moves their lines out of the hashed ``requirements.txt`` into ``vcs.txt`` beside it: the
  hashed lock keeps ``--require-hashes`` whole, ``vcs.txt`` lists each VCS pin at its commit;
- ``invoke sync`` installs them in a phase of their own after the rest (``--no-deps``: their
  dependencies came in hashed), never editable in the twin;
- the twin check and ``invoke diff`` compare them by commit.

The checkout readers here let ``invoke diff`` and ``invoke freeze`` give an editable install (whose
``direct_url.json`` records only a folder) its commit and remote, the way ``pip freeze`` does by
running git, but by reading ``.git`` directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import NormalizedName

__all__ = ["VCS_TXT", "GitCheckout", "read_checkout", "folder_of", "vcs_url", "split_body", "render_vcs_lock",
           "same_commit"]

VCS_TXT = "vcs.txt"


@dataclass(frozen=True)
class GitCheckout:
    folder: Path
    commit: str | None
    remote: str | None


def folder_of(url: str) -> Path | None:
    """The local folder of a ``file://`` URL (an editable install's ``direct_url.json``)."""
    if not url.startswith("file:"):
        return None
    return Path(unquote(urlsplit(url).path))


def _git_dir(folder: Path) -> Path | None:
    for here in (folder, *folder.parents):
        dot = here / ".git"
        if dot.is_dir():
            return dot
        if dot.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = dot.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                target = Path(text.split(":", 1)[1].strip())
                return target if target.is_absolute() else (here / target).resolve()
        if (here / "pyproject.toml").exists() and here != folder:
            break
    return None


def _common_dir(git_dir: Path) -> Path:
    common = git_dir / "commondir"
    if common.is_file():
        target = Path(common.read_text(encoding="utf-8").strip())
        return target if target.is_absolute() else (git_dir / target).resolve()
    return git_dir


def _resolve_ref(git_dir: Path, ref: str) -> str | None:
    for base in (git_dir, _common_dir(git_dir)):
        path = base / ref
        if path.is_file():
            return path.read_text(encoding="utf-8").strip() or None
        packed = base / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8", errors="replace").splitlines():
                sha, _, name = line.partition(" ")
                if name.strip() == ref:
                    return sha
    return None


def read_checkout(folder: Path) -> GitCheckout | None:
    """The HEAD commit and the ``origin`` remote of the git checkout holding ``folder`` (``None``: not
    a git checkout). Read from ``.git`` (HEAD, refs, packed-refs, config), worktrees included."""
    import configparser  # lazy: start-up cost (only a VCS checkout folder needs it)

    try:
        git_dir = _git_dir(folder)
        if git_dir is None:
            return None
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
        commit = _resolve_ref(git_dir, head[4:].strip()) if head.startswith("ref:") else head
        config = configparser.ConfigParser(strict=False, interpolation=None)
        config.read(_common_dir(git_dir) / "config", encoding="utf-8")
        remote = config.get('remote "origin"', "url", fallback=None)
    except (OSError, configparser.Error):
        return None
    return GitCheckout(folder, commit.lower() if commit else None, remote)


def vcs_url(remote: str, commit: str) -> str:
    """``git+<remote>@<commit>`` as pip freeze writes it (scp-style ``git@host:org/r`` made ``ssh://``)."""
    if "://" not in remote and ":" in remote and "@" in remote.split(":", 1)[0]:
        user_host, path = remote.split(":", 1)
        remote = f"ssh://{user_host}/{path}"
    elif "://" not in remote:
        remote = Path(remote).resolve().as_uri()
    return f"git+{remote}@{commit}"


def same_commit(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


def split_body(body: str, names: Iterable[NormalizedName]) -> tuple[str, list[str]]:
    """Take the VCS pins ``names`` out of a pip-compile body: (the body without their blocks,
    their requirement lines). A block is the requirement line and its indented ``#`` lines."""
    wanted = set(names)
    kept: list[str] = []
    taken: list[str] = []
    skipping = False
    for line in body.splitlines():
        if skipping and line.startswith((" ", "\t")):
            continue
        skipping = False
        head = line.split(" @ ", 1)[0].strip() if " @ " in line else ""
        if head and not line.startswith((" ", "#", "-")):
            from packaging.utils import canonicalize_name

            if canonicalize_name(head.split("[", 1)[0]) in wanted:
                taken.append(line.split(" \\", 1)[0].rstrip())
                skipping = True
                continue
        kept.append(line)
    return "\n".join(kept) + "\n", taken


def render_vcs_lock(head: str, lines: Sequence[str]) -> str:
    return head + "".join(f"{line}\n" for line in sorted(lines))

