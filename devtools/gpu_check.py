"""``python -m devtools.gpu_check --python /usr/bin/python3 --out gpu-check.md``: one run, a few minutes, on a
GPU host (an NGC container's Python, a cluster node's system Python).

1. reads the real driver (``probe.py cuda`` in the host's Python: libcuda's cuDriverGetVersion, nvidia-smi as
   fallback) and prints what it found;
2. writes a small profile with ``provided = ["torch"]`` and one variant per CUDA (cpu, cu118 ... cu128), and
   compiles it ``--provided-from`` the host's Python (every variant's lock, against the host's torch);
3. runs ``invoke doctor --python HOST --profile P`` against the host's own torch: the variant the driver
   picks, and why, is its ``variant`` finding;
4. makes a ``--system-site-packages`` venv over the host's Python (``HOST -m venv``) and syncs the profile into
   it from a local index (no network): the variant is chosen by the driver as any sync does, torch is kept as
   the machine's; a second sync must do nothing;
5. imports torch from the venv (the host's file), runs doctor on the venv, and asks torch for the GPU
   (``torch.cuda.is_available()``, the CUDA it was built for, the device).

The end is a "note" block: what docs/variants.md records for a host where the check ran.

On a host without an NVIDIA driver (this is a rehearsal) or whose Python has no torch, the host Python is
replaced by a stand-in image Python (devtools/imagepython.py: a copy of this interpreter with a stand-in
``torch 2.4.0+cpu`` in its own site-packages), so that every step above runs the real code paths; the
torch.cuda step, the one that needs the GPU, is not run, and one line says so.

Needs: stacksync installed in the Python that runs this (``pip install -e '.[dev]'``: pypiserver). Everything is
written under ``--workdir``; ``--out`` gets the transcript (Markdown). Exit 0 when every step did what it should.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from packaging.utils import canonicalize_name

from devtools.bench import build_wheel
from devtools.bench_deferred import _pypiserver
from devtools.imagepython import make_image
from stacksync.core import runner
from stacksync.cuda.facts import probe_facts
from stacksync.env.environment import find_python, probe

ROOT = Path(__file__).resolve().parent.parent
#: the variants of the check's profile: one per CUDA the PyTorch indexes publish, and cpu
CUDAS = ("11.8", "12.1", "12.4", "12.6", "12.8")
STAND_IN_TORCH = "2.4.0+cpu"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.failed: list[str] = []
        self.note: list[str] = []

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)

    def step(self, title: str, argv: list[str], *, expect_ok: bool = True,
             env: dict[str, str] | None = None) -> runner.Result:
        result = runner.run(argv, check=False, timeout=600, env=env)
        self.say(f"\n### {title}\n\n```\n$ {' '.join(argv)}\n{result.stdout}{result.stderr}"
                 f"(exit {result.returncode}, {result.seconds:.1f} s)\n```")
        self.note.append(f"{title}: exit {result.returncode}, {result.seconds:.1f} s")
        if expect_ok and result.returncode != 0:
            self.failed.append(title)
        return result


def profile_toml(port: int) -> str:
    """The check's profile: the host's torch provided, one small package from the local index, a variant per
    CUDA (the locks differ only in name: what is checked is the choice and the provided torch)."""
    variants = "".join(f'[variants.cu{c.replace(".", "")}]\ncuda = "{c}"\n' for c in CUDAS)
    return textwrap.dedent(f"""\
        description = "gpu_check: the host's torch provided, one small package synced over it"
        index_url = "http://127.0.0.1:{port}/simple/"
        # the host's torch is on no index this check serves (as an NGC image's own build is on none):
        # uv leaves it out of the resolution, pip-tools would refuse
        backend = "uv"
        provided = ["torch"]
        [smoke]
        rest = ["torch", "gpu_check_app"]
        [variants.cpu]
        """) + variants


def stand_in_image(work: Path, log: Log) -> Path:
    """An image Python (devtools/imagepython.py) with a stand-in torch in its own site-packages, by real pip
    from a folder of its own (not the index the sync reads: an image's torch is on none)."""
    packages = work / "image-wheels"
    packages.mkdir(exist_ok=True)
    build_wheel(packages, "torch", STAND_IN_TORCH, files={
        "torch/__init__.py": f'__version__ = "{STAND_IN_TORCH}"\n'.encode(),
        "torch/version.py": f"__version__ = '{STAND_IN_TORCH}'\ncuda = None\n".encode()})
    image = make_image(work / "image")
    log.step("stand-in torch into the image Python (real pip)",
             [sys.executable, "-m", "pip", "--python", str(image), "install", "-q", "--root-user-action=ignore",
              "--no-index", "--find-links",
              str(packages), f"torch=={STAND_IN_TORCH}"], env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--python", default="python3", help="the host's Python, the one with its own torch")
    parser.add_argument("--workdir", default="", help="where the venv, the profile and the index go")
    parser.add_argument("--out", default="", help="write the transcript (Markdown) here")
    args = parser.parse_args(argv)
    started = time.monotonic()
    log = Log()
    host = find_python(args.python)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="stacksync-gpu-check-")).absolute()
    work.mkdir(parents=True, exist_ok=True)
    invoke = [sys.executable, "-m", "invoke", "-r", str(ROOT)]
    # the sync cache and the wheelhouse under --workdir, not in the checkout
    env = {**os.environ, "STACKSYNC_CACHE_DIR": str(work / "cache"), "STACKSYNC_WHEELHOUSE": str(work / "wheelhouse")}

    facts = probe_facts(host)
    d = facts.driver
    log.say(f"## gpu_check on {facts.system} {facts.machine}, host Python {host}\n")
    log.say(f"driver: found={d.found} source={d.source} version={d.version} cuda={d.cuda} "
            f"devices={[x.describe() for x in d.devices]} init_error={d.init_error} error={d.error}")
    log.note.append(f"host: {facts.system} {facts.machine}; driver {d.version or 'none'} (CUDA {d.cuda or '-'}, "
                    f"from {d.source or '-'}); devices: {', '.join(x.describe() for x in d.devices) or 'none'}")
    torch_version = probe(host).versions().get(canonicalize_name("torch"))
    log.say(f"host torch: {torch_version or 'not installed'}")
    packages = work / "index"
    packages.mkdir(exist_ok=True)
    build_wheel(packages, "gpu-check-app", "1.0")
    rehearsal = not d.found or not torch_version
    if rehearsal:
        why = "no NVIDIA driver loads here" if not d.found else "the host Python has no torch"
        log.say(f"rehearsal: {why}: the host Python is replaced by a stand-in image Python with torch "
                f"{STAND_IN_TORCH} (devtools/imagepython.py)")
        host = stand_in_image(work, log)
        torch_version = probe(host).versions().get(canonicalize_name("torch"))
    log.note.append(f"host Python {host}; torch {torch_version}")

    port = _port()
    folder = work / "locks" / "gpu-provided"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.in").write_text("gpu-check-app==1.0\n", encoding="utf-8")
    (folder / "stack.toml").write_text(profile_toml(port), encoding="utf-8")
    venv = work / "venv"
    made = log.step("a --system-site-packages venv over the host Python",
                    [str(host), "-m", "venv", "--system-site-packages", "--clear", str(venv)])
    if made.returncode != 0 and "ensurepip" in made.stdout + made.stderr:
        # a distribution Python without its venv package (Debian / Ubuntu images): the venv sees the
        # image's pip through the system site-packages
        log.failed.remove("a --system-site-packages venv over the host Python")
        log.step("the same venv without pip (this Python has no ensurepip; the image's pip is seen)",
                 [str(host), "-m", "venv", "--system-site-packages", "--without-pip", "--clear", str(venv)])
    with _pypiserver(packages, port, work, None):
        log.step("compile --provided-from the host Python (one lock per variant)",
                 [*invoke, "compile", "--profile", str(folder), "--provided-from", str(host)], env=env)
        doctor = log.step("doctor against the host's own torch, with the profile",
                          [*invoke, "doctor", "--python", str(host), "--profile", str(folder)], expect_ok=False,
                          env=env)
        log.note += [f"doctor: {line.strip()}" for line in doctor.stdout.splitlines() if "variant" in line]
        synced = log.step("sync (variant by the driver, torch kept as the machine's)",
                          [*invoke, "sync", "--profile", str(folder), "--venv", str(venv), "--yes"], env=env)
        log.note += [line.strip() for line in (synced.stdout + synced.stderr).splitlines()
                     if line.startswith("variant ") or "provided by the machine" in line or "twin of the lock" in line]
        again = log.step("sync again (nothing to do)", [*invoke, "sync", "--profile", str(folder), "--venv",
                                                        str(venv), "--yes"], env=env)
        if "already in sync" not in again.stderr:
            log.failed.append("second sync was not a no-op")
    seen = log.step("torch in the venv is the host's", [str(venv / "bin" / "python"), "-c",
                                                        "import torch; print(torch.__version__, torch.__file__)"])
    log.note.append(f"torch in the venv: {seen.stdout.strip()}")
    venv_doctor = log.step("doctor of the venv with the profile", [*invoke, "doctor", "--venv", str(venv),
                                                                   "--profile", str(folder)], expect_ok=False, env=env)
    log.note += [f"doctor of the venv: {line.strip()}" for line in venv_doctor.stdout.splitlines()
                 if line.strip().startswith(("ok torch", "ok variant", "error", "warning torch"))]
    if rehearsal:
        log.say("\nrehearsal: stopped before torch.cuda in the venv over the host's own torch, the one step "
                "that needs a GPU: run this on a GPU host for the note")
    else:
        cuda = log.step("torch.cuda from the venv", [str(venv / "bin" / "python"), "-c",
                                                     "import torch; print(torch.cuda.is_available(), "
                                                     "torch.version.cuda, torch.cuda.get_device_name(0) "
                                                     "if torch.cuda.is_available() else '-')"])
        log.note.append(f"torch.cuda (available, built for, device): {cuda.stdout.strip()}")
        if not cuda.stdout.startswith("True"):
            log.failed.append("torch.cuda is not available in the venv")
    log.note.append(f"whole run: {time.monotonic() - started:.0f} s")
    return _finish(log, args.out, rehearsal)


def _finish(log: Log, out: str, rehearsal: bool = False) -> int:
    log.say("\n### note\n\n" + "\n".join(f"- {line}" for line in log.note))
    verdict = "FAILED: " + ", ".join(log.failed) if log.failed else "every step as expected"
    log.say(f"\nresult: {verdict}" + (" (a rehearsal, not the GPU run)" if rehearsal else ""))
    if out:
        Path(out).write_text("\n".join(log.lines) + "\n", encoding="utf-8")
    return 1 if log.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
