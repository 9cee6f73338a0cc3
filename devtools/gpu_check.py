"""``python -m devtools.gpu_check --python /usr/bin/python3``: one run, a few minutes, on a GPU host.

1. reads the real driver (``probe.py cuda`` in the host's Python: libcuda's cuDriverGetVersion, nvidia-smi as
   fallback) and prints what it found;
2. runs the variant choice (stacksync.cuda.variant) for the example profile of docs/variants.md;
3. runs ``invoke doctor`` against the host's own torch;
4. makes a ``--system-site-packages`` venv over that Python and syncs a small profile with
   ``provided = ["torch"]`` into it from a local index (no network needed): compile ``--provided-from`` the
   host's Python, sync, a second sync (must do nothing), and torch imported from the venv (the image's).

Needs: stacksync installed in the Python that runs this (``pip install -e '.[dev]'``: pypiserver), and a
host Python with torch. Everything is written under ``--workdir``; ``--out`` gets the transcript (Markdown),
which docs/variants.md quotes where the check has been run. Exit 0 when every step did what it should.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import textwrap
from pathlib import Path

from packaging.utils import canonicalize_name

from devtools.bench import build_wheel
from devtools.bench_deferred import _pypiserver
from stacksync.core import runner
from stacksync.cuda.facts import probe_facts
from stacksync.cuda.variant import NoVariant, choose, platform_of
from stacksync.env.environment import find_python, probe
from stacksync.lock.variants import Variant

ROOT = Path(__file__).resolve().parent.parent

#: the variants of docs/variants.md's example profile (cluster, workstation, GH200, laptop)
EXAMPLE = {
    "cpu": Variant("cpu"),
    "cu121": Variant("cu121", cuda="12.1", platforms=("linux_x86_64",)),
    "cu124": Variant("cu124", cuda="12.4", platforms=("linux_x86_64",)),
    "gh200-cu124": Variant("gh200-cu124", cuda="12.4", platforms=("linux_aarch64",)),
}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.failed: list[str] = []

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)

    def step(self, title: str, argv: list[str], *, expect_ok: bool = True) -> runner.Result:
        result = runner.run(argv, check=False, timeout=600)
        self.say(f"\n### {title}\n\n```\n$ {' '.join(argv)}\n{result.stdout}{result.stderr}"
                 f"(exit {result.returncode}, {result.seconds:.1f} s)\n```")
        if expect_ok and result.returncode != 0:
            self.failed.append(title)
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="python3", help="the host's Python, the one with its own torch")
    parser.add_argument("--workdir", default="", help="where the venv, the profile and the index go")
    parser.add_argument("--out", default="", help="write the transcript (Markdown) here")
    args = parser.parse_args(argv)
    log = Log()
    host = find_python(args.python)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="stacksync-gpu-check-")).absolute()
    work.mkdir(parents=True, exist_ok=True)
    invoke = [sys.executable, "-m", "invoke", "-r", str(ROOT)]

    facts = probe_facts(host)
    d = facts.driver
    log.say(f"## gpu_check on {facts.system} {facts.machine}, host Python {host}\n")
    log.say(f"driver: found={d.found} source={d.source} version={d.version} cuda={d.cuda} "
            f"devices={[x.describe() for x in d.devices]} init_error={d.init_error} error={d.error}")
    platform, machine = platform_of(facts)
    try:
        choice = choose(EXAMPLE, d.cuda, platform, machine=machine, profile="example")
        log.say(f"variant of the example profile: {choice.name} ({choice.why})")
    except NoVariant as exc:
        log.say(f"variant of the example profile: refused: {exc}")
    torch_version = probe(host).versions().get(canonicalize_name("torch"))
    log.say(f"host torch: {torch_version or 'not installed'}")
    log.step("doctor against the host's own torch", [*invoke, "doctor", "--python", str(host)], expect_ok=False)
    if not torch_version:
        log.say("no torch in the host Python: the provided-torch sync is skipped")
        log.failed.append("host torch")
        return _finish(log, args.out)

    packages = work / "index"
    packages.mkdir(exist_ok=True)
    build_wheel(packages, "gpu-check-app", "1.0")
    port = _port()
    folder = work / "locks" / "gpu-provided"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.in").write_text("gpu-check-app==1.0\n", encoding="utf-8")
    (folder / "stack.toml").write_text(textwrap.dedent(f"""\
        description = "gpu_check: the host's torch provided, one small package synced over it"
        index_url = "http://127.0.0.1:{port}/simple/"
        provided = ["torch"]
        [smoke]
        rest = ["torch", "gpu_check_app"]
        """), encoding="utf-8")
    venv = work / "venv"
    log.step("a --system-site-packages venv over the host Python",
             [str(host), "-m", "venv", "--system-site-packages", "--clear", str(venv)])
    with _pypiserver(packages, port, work, None):
        log.step("compile --provided-from the host Python",
                 [*invoke, "compile", "--profile", str(folder), "--provided-from", str(host)])
        log.step("sync (torch kept as the machine's)", [*invoke, "sync", "--profile", str(folder), "--venv",
                                                        str(venv), "--yes"])
        again = log.step("sync again (nothing to do)", [*invoke, "sync", "--profile", str(folder), "--venv",
                                                        str(venv), "--yes"])
        if "already in sync" not in again.stderr:
            log.failed.append("second sync was not a no-op")
    log.step("torch from the venv", [str(venv / "bin" / "python"), "-c",
                                     "import torch; print(torch.__version__, torch.__file__, "
                                     "torch.cuda.is_available(), torch.version.cuda)"])
    log.step("doctor of the venv with the profile", [*invoke, "doctor", "--venv", str(venv), "--profile",
                                                     str(folder)], expect_ok=False)
    return _finish(log, args.out)


def _finish(log: Log, out: str) -> int:
    log.say(f"\nresult: {'FAILED: ' + ', '.join(log.failed) if log.failed else 'every step as expected'}")
    if out:
        Path(out).write_text("\n".join(log.lines) + "\n", encoding="utf-8")
    return 1 if log.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
