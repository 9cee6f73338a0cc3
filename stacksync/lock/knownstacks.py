"""What stacksync knows about ML stacks: which packages form the base phase, which are build-order
packages (deferred: built last, without build isolation, against the installed torch), and the
import names of packages whose module is not their project name.

Used by ``invoke freeze --from`` to propose ``base`` / ``deferred`` / ``[smoke]`` for a baseline,
and by profile loading to check smoke and ``imports`` names. Data only; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from packaging.utils import NormalizedName, canonicalize_name

__all__ = ["BASE", "CONDA_ONLY", "CONDA_RENAMES", "CONDA_TOOLING", "DEFERRED", "FROM_SOURCE_ONLY", "MODULES",
           "KnownDeferred", "conda_only", "is_conda_tooling", "is_cuda_runtime", "modules_of",
           "module_names", "propose_base", "propose_deferred"]

#: installed first, binary only, with their locked closure (the nvidia-* runtime wheels come with torch)
BASE: tuple[str, ...] = ("torch", "torchvision", "torchaudio", "triton")


@dataclass(frozen=True)
class KnownDeferred:
    """A build-order package: what ``[deferred.NAME]`` should say for it."""

    requires: tuple[str, ...]
    imports: tuple[str, ...] = ("torch",)
    build_requires: tuple[str, ...] = ("setuptools", "wheel", "packaging", "ninja")
    build_env: Mapping[str, str] = field(default_factory=lambda: {"MAX_JOBS": "4"})
    #: only when installed from source (an sdist or a VCS pin), not from a wheel on the index
    source_only: bool = False
    note: str = ""


DEFERRED: dict[str, KnownDeferred] = {
    "flash-attn": KnownDeferred(("torch", "einops"),
                                build_requires=("setuptools", "wheel", "packaging", "ninja", "psutil"),
                                note="sdist only on PyPI; setup.py imports torch"),
    "xformers": KnownDeferred(("torch",), source_only=True,
                              note="wheels exist per torch version; built from source it needs torch"),
    "apex": KnownDeferred(("torch",), build_env={"MAX_JOBS": "4", "APEX_CPP_EXT": "1", "APEX_CUDA_EXT": "1"},
                          note="NVIDIA apex: built against the installed torch"),
    "deepspeed": KnownDeferred(("torch",), build_requires=("setuptools", "wheel", "packaging", "ninja", "psutil",
                                                            "py-cpuinfo"),
                               note="sdist only; setup.py imports torch"),
    "mamba-ssm": KnownDeferred(("torch", "einops", "triton"), note="setup.py imports torch"),
    "causal-conv1d": KnownDeferred(("torch",), note="setup.py imports torch"),
    "flashinfer": KnownDeferred(("torch",), source_only=True, note="AOT build needs torch"),
    "flashinfer-python": KnownDeferred(("torch",), source_only=True, note="AOT build needs torch"),
}

#: project -> import names, where they differ from the project name
MODULES: dict[str, tuple[str, ...]] = {
    "pyyaml": ("yaml",), "pillow": ("PIL",), "scikit-learn": ("sklearn",), "scikit-image": ("skimage",),
    "opencv-python": ("cv2",), "opencv-python-headless": ("cv2",), "opencv-contrib-python": ("cv2",),
    "beautifulsoup4": ("bs4",), "protobuf": ("google.protobuf", "google"), "python-dateutil": ("dateutil",),
    "attrs": ("attr", "attrs"), "pyjwt": ("jwt",), "pyzmq": ("zmq",), "gitpython": ("git",),
    "pycryptodome": ("Crypto",), "pyopenssl": ("OpenSSL",), "pyserial": ("serial",),
    "mamba-ssm": ("mamba_ssm",), "causal-conv1d": ("causal_conv1d",), "flashinfer-python": ("flashinfer",),
    "flash-attn": ("flash_attn", "flash_attn_2_cuda"), "nvidia-apex": ("apex",), "apex": ("apex",),
    "huggingface-hub": ("huggingface_hub",), "sentencepiece": ("sentencepiece",), "msgpack": ("msgpack",),
    "typing-extensions": ("typing_extensions",), "setuptools": ("setuptools", "pkg_resources", "_distutils_hack"),
    "pywin32": ("win32api", "win32con", "pythoncom", "pywintypes"), "google-auth": ("google.auth", "google"),
    "grpcio": ("grpc",), "tensorflow": ("tensorflow", "tf"), "jax": ("jax",), "jaxlib": ("jaxlib",),
    "py-cpuinfo": ("cpuinfo",), "python-multipart": ("multipart", "python_multipart"), "faiss-cpu": ("faiss",),
    "faiss-gpu": ("faiss",), "lm-eval": ("lm_eval",), "sse-starlette": ("sse_starlette",),
    "speechrecognition": ("speech_recognition",), "llama-cpp-python": ("llama_cpp",), "auto-gptq": ("auto_gptq",),
    "autoawq": ("awq",), "bitsandbytes": ("bitsandbytes",), "tiktoken": ("tiktoken",),
    "nvidia-ml-py": ("pynvml",), "pynvml": ("pynvml",), "absl-py": ("absl",), "antlr4-python3-runtime": ("antlr4",),
    "ruamel-yaml": ("ruamel.yaml", "ruamel"), "mkl-service": ("mkl",), "pysocks": ("socks", "sockshandler"),
    "brotli": ("brotli",), "brotli-python": ("brotli",), "importlib-metadata": ("importlib_metadata",),
    "msgpack-python": ("msgpack",), "prompt-toolkit": ("prompt_toolkit",), "pyarrow": ("pyarrow",),
}


#: conda's own machinery, in the pip section of a conda base env: not part of the stack being twinned
CONDA_TOOLING = frozenset({"conda", "conda-content-trust", "conda-libmamba-solver", "conda-package-handling",
                           "conda-package-streaming", "conda-build", "conda-index", "libmambapy", "menuinst",
                           "mamba", "anaconda-client", "anaconda-anon-usage"})


#: conda package names whose PyPI project has another name (conda-forge / defaults / pytorch channels)
CONDA_RENAMES: dict[str, str] = {
    "pytorch": "torch", "pytorch-gpu": "torch", "pytorch-cpu": "torch", "torchtriton": "triton",
    "py-opencv": "opencv-python", "opencv": "opencv-python", "matplotlib-base": "matplotlib",
    "python-tzdata": "tzdata", "brotli-python": "brotli", "msgpack-python": "msgpack", "pytables": "tables",
    "py-xgboost": "xgboost", "py-xgboost-gpu": "xgboost", "pyqt": "pyqt5", "python-flatbuffers": "flatbuffers",
    "python-xxhash": "xxhash", "pytorch-scatter": "torch-scatter", "pytorch-sparse": "torch-sparse",
    "pytorch-cluster": "torch-cluster", "pyg": "torch-geometric", "sentencepiece-python": "sentencepiece",
    "py-cpuinfo": "py-cpuinfo", "python-graphviz": "graphviz", "pytorch-lightning": "pytorch-lightning",
    "tensorflow-gpu": "tensorflow", "keras-gpu": "keras", "ruamel_yaml": "ruamel-yaml",
}

#: conda packages that are not Python projects on PyPI (the interpreter, C/C++ libraries, CUDA, BLAS,
#: meta packages): what each is, for the note a baseline lists them under
CONDA_ONLY: dict[str, str] = {
    "python": "the interpreter (the profile's python = X.Y)",
    "python_abi": "conda's ABI marker for the interpreter",
    "cudatoolkit": "the CUDA toolkit (torch's PyPI wheels bring their own nvidia-*-cu1x libraries)",
    "cuda-toolkit": "the CUDA toolkit (torch's PyPI wheels bring their own nvidia-*-cu1x libraries)",
    "pytorch-cuda": "conda's CUDA selector for pytorch (torch's PyPI wheels bring their own nvidia-*-cu1x libraries)",
    "cuda-version": "conda's CUDA selector",
    "pytorch-mutex": "conda's CPU/CUDA selector for pytorch",
    "cudnn": "cuDNN (torch's PyPI wheels bring nvidia-cudnn-cu1x)",
    "nccl": "NCCL (torch's PyPI wheels bring nvidia-nccl-cu1x)",
    "mkl": "Intel MKL (numpy / torch wheels on PyPI carry their own BLAS)",
    "blas": "conda's BLAS selector", "numpy-base": "the core of conda's numpy (the numpy pin covers it)",
    "tensorflow-base": "the core of conda's tensorflow (the tensorflow pin covers it)",
    "intel-openmp": "Intel's OpenMP runtime (a C library here)", "openssl": "a C library",
    "ca-certificates": "conda's CA bundle (certifi is the Python one)", "tzdata": "time zone files (not PyPI's tzdata)",
    "yaml": "libyaml (pyyaml is the Python one)", "ffmpeg": "a C program / library",
    "mkl_fft": "the MKL FFT binding of conda's numpy (PyPI's numpy does not use it)",
    "mkl_random": "the MKL random binding of conda's numpy (PyPI's numpy does not use it)",
    "mkl-service": "conda's MKL runtime control (PyPI's numpy and torch wheels do not use it)",
    "_pytorch_select": "conda's CPU/GPU selector for pytorch",
}

#: projects whose PyPI name belongs to another project: never looked up on the index under that name
FROM_SOURCE_ONLY: dict[str, tuple[str, str]] = {
    # name -> (what it is, the source to pin)
    "apex": ("NVIDIA apex, built from source (PyPI's `apex` is another project)",
             "apex @ git+https://github.com/NVIDIA/apex.git@<40-hex commit>"),
}

#: a conda name that is a library whatever its build string says (no PyPI project of that name)
_NOT_LIBS = frozenset({"librosa", "libcst", "libtmux", "libsass", "liblinear", "libvirt-python"})


def conda_only(name: str, build: str) -> str | None:
    """What conda row ``name`` / ``build`` is when it has no PyPI equivalent, else ``None``.

    A conda build string of a Python package names the Python it was built for (``py310h...``,
    ``pyhd8ed1ab_0``, ``py3.10_cuda12.1...``); a C/C++ library's does not (``h7f8727e_2``)."""
    n = name.lower()
    if n in CONDA_ONLY:
        return CONDA_ONLY[n]
    if n in CONDA_RENAMES:
        return None
    if n.startswith("_") or n.startswith(("cuda-", "libcu", "libnv", "ld_impl_")):
        return "a conda system package"
    if n.startswith("lib") and n not in _NOT_LIBS:  # libboost-python: a C++ library built per Python
        return "a conda library package"
    if build:
        if "py" not in build.lower() and build.lower() not in ("pypi_0",) and n not in _NOT_LIBS:
            return "a conda package with no Python code (a C/C++ library or tool)"
        return None
    if n.startswith("lib") and n not in _NOT_LIBS:
        return "a conda library package"
    return None


def is_conda_tooling(name: str) -> bool:
    """conda's own machinery (the tool, its solvers, plugins and Anaconda's login / telemetry), which a
    conda base environment's ``pip freeze`` / ``pip list`` shows beside the stack."""
    n = canonicalize_name(name)
    return n in CONDA_TOOLING or n.startswith(("conda-", "anaconda-"))


def is_cuda_runtime(name: str) -> bool:
    """The nvidia-*-cu1x runtime wheels torch depends on (installed with the base phase)."""
    n = canonicalize_name(name)
    return n.startswith("nvidia-") and ("-cu1" in n or n in ("nvidia-nccl", "nvidia-nvtx"))


def modules_of(name: str) -> tuple[str, ...]:
    """The import names of project ``name``: from :data:`MODULES`, else the name with ``_``."""
    n = canonicalize_name(name)
    return MODULES.get(n, (n.replace("-", "_"),))


def module_names(projects: Iterable[str]) -> dict[str, NormalizedName]:
    """Every import name (top level and dotted) of ``projects`` -> the project."""
    out: dict[str, NormalizedName] = {}
    for p in projects:
        n = canonicalize_name(p)
        for m in modules_of(n):
            out.setdefault(m, n)
            out.setdefault(m.split(".", 1)[0], n)
    return out


def propose_base(names: Iterable[NormalizedName]) -> list[NormalizedName]:
    have = set(names)
    return [canonicalize_name(b) for b in BASE if b in have]


def propose_deferred(names: Iterable[NormalizedName], *, from_source: Iterable[NormalizedName] = ()
                     ) -> dict[NormalizedName, KnownDeferred]:
    """The build-order packages among ``names`` (``from_source``: those pinned as an sdist / VCS)."""
    source = set(from_source)
    out: dict[NormalizedName, KnownDeferred] = {}
    for n in names:
        known = DEFERRED.get(n)
        if known is not None and (not known.source_only or n in source):
            out[n] = known
    return out
