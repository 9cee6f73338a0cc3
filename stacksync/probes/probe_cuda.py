"""The ``cuda`` command's facts for :mod:`probe` (same rules: standard library only, CPython >= 3.8, runs
inside the target). Imported by ``probe.py cuda`` from this folder; kept apart so that ``env`` and ``smoke``
never load ctypes probing of the driver."""

import ctypes
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig

TIMEOUT = 20

CUDA_LIB = re.compile(r"^lib(cuda|cudart|cublas|cudnn|nccl|cusparse|cufft|curand|cusolver|nvJitLink|nvrtc|"
                      r"cupti|nvToolsExt|cufile|nvshmem|nvidia-ml)[A-Za-z0-9_+-]*\.so(\.[\d.]+)?$")


CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75


CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76


def run(argv):
    """(returncode, output) or (None, error text); never raises."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=TIMEOUT, text=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)
    return proc.returncode, proc.stdout or ""


def loaded_path(fragment):
    """Where the dynamic loader found a library we loaded (from /proc/self/maps)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                path = line.rstrip("\n").split(None, 5)[-1] if len(line.split()) >= 6 else ""
                if fragment in os.path.basename(path):
                    return path
    except OSError:
        pass
    return None


def cu_error(lib, code):
    """A CUresult as its name (CUDA_ERROR_NO_DEVICE), when the library can say."""
    try:
        fn = lib.cuGetErrorName
    except AttributeError:
        return f"CUresult {code}"
    name = ctypes.c_char_p()
    if fn(ctypes.c_int(code), ctypes.byref(name)) == 0 and name.value:
        return "{} ({})".format(name.value.decode("ascii", "replace"), code)
    return f"CUresult {code}"


def kernel_driver_version():
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8", errors="replace") as fh:
            match = re.search(r"Kernel Module\s+(?:for\s+\S+\s+)?(\d+\.\d+(?:\.\d+)?)", fh.read())
    except OSError:
        return None
    return match.group(1) if match else None


def driver_from_libcuda():
    override = os.environ.get("STACKSYNC_LIBCUDA")
    candidates = [override] if override else ["libcuda.so.1", "libcuda.so", "/usr/lib/wsl/lib/libcuda.so.1"]
    info = {"found": False, "source": "libcuda", "library": None, "cuda_int": None, "version": None,
            "devices": [], "device_count": None, "init_error": None, "error": None,
            "tried": candidates}
    lib = None
    errors = []
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as exc:
            errors.append(str(exc))
    if lib is None:
        info["error"] = "; ".join(errors) or "no candidate library"
        return info
    info["found"] = True
    path = loaded_path("libcuda") or (override if override else None)
    info["library"] = os.path.realpath(path) if path else None
    try:
        value = ctypes.c_int(0)
        code = lib.cuDriverGetVersion(ctypes.byref(value))
        if code == 0:
            info["cuda_int"] = value.value
        else:
            info["error"] = "cuDriverGetVersion: " + cu_error(lib, code)
    except AttributeError:
        info["error"] = "the library has no cuDriverGetVersion"
        return info
    # The driver release (e.g. 550.54.14): the versioned file name of libcuda, else the kernel module.
    match = re.search(r"libcuda\.so\.(\d+\.\d+(?:\.\d+)?)$", info["library"] or "")
    info["version"] = match.group(1) if match else (None if override else kernel_driver_version())
    try:
        code = lib.cuInit(ctypes.c_uint(0))
    except AttributeError:
        info["init_error"] = "the library has no cuInit"
        return info
    if code != 0:
        info["init_error"] = cu_error(lib, code)
        return info
    try:
        count = ctypes.c_int(0)
        code = lib.cuDeviceGetCount(ctypes.byref(count))
    except AttributeError:
        return info
    if code != 0:
        info["init_error"] = "cuDeviceGetCount: " + cu_error(lib, code)
        return info
    info["device_count"] = count.value
    for ordinal in range(count.value):
        info["devices"].append(device_info(lib, ordinal))
    return info


def device_info(lib, ordinal):
    device = {"index": ordinal, "name": None, "memory_mib": None, "capability": None}
    try:
        handle = ctypes.c_int(0)
        if lib.cuDeviceGet(ctypes.byref(handle), ctypes.c_int(ordinal)) != 0:
            return device
        buf = ctypes.create_string_buffer(256)
        if lib.cuDeviceGetName(buf, ctypes.c_int(len(buf)), handle) == 0:
            device["name"] = buf.value.decode("utf-8", "replace")
        total = ctypes.c_size_t(0)
        fn = getattr(lib, "cuDeviceTotalMem_v2", None) or getattr(lib, "cuDeviceTotalMem", None)
        if fn is not None and fn(ctypes.byref(total), handle) == 0:
            device["memory_mib"] = total.value // (1024 * 1024)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        get = lib.cuDeviceGetAttribute
        if (get(ctypes.byref(major), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, handle) == 0
                and get(ctypes.byref(minor), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, handle) == 0):
            device["capability"] = f"{major.value}.{minor.value}"
    except AttributeError:
        pass
    return device


def driver_from_nvidia_smi(info):
    """Fallback when libcuda cannot be loaded but nvidia-smi works (odd container layouts)."""
    smi = os.environ.get("STACKSYNC_NVIDIA_SMI")
    smi = shutil.which("nvidia-smi") if smi is None else (smi or None)
    if not smi:
        return info
    code, out = run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"])
    if code != 0:
        info["smi_error"] = out.strip()[-300:]
        return info
    devices = []
    version = None
    for index, line in enumerate(out.strip().splitlines()):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            version = parts[1]
            memory = int(parts[2]) if parts[2].isdigit() else None
            devices.append({"index": index, "name": parts[0], "memory_mib": memory, "capability": None})
    code, header = run([smi])
    match = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", header or "")
    info.update({"found": bool(devices), "source": "nvidia-smi", "library": None, "version": version,
                 "devices": devices, "device_count": len(devices),
                 "cuda_int": int(match.group(1)) * 1000 + int(match.group(2)) * 10 if match else None})
    return info


def version_of(exe, pattern):
    code, out = run([exe, "--version"])
    if code != 0:
        return None, (out or "").strip()[-300:]
    match = re.search(pattern, out)
    if not match:
        return None, (out.strip().splitlines() or [""])[0][:200]
    line = next((ln for ln in out.splitlines() if match.group(0) in ln), match.group(0))
    return match.group(1), line.strip()[:200]


def cuda_home():
    """CUDA_HOME as torch.utils.cpp_extension finds it (the nvcc a deferred build will use)."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var], var
    nvcc = shutil.which("nvcc")
    if nvcc:
        return os.path.dirname(os.path.dirname(nvcc)), "nvcc on PATH"
    if os.path.isdir("/usr/local/cuda"):
        return "/usr/local/cuda", "/usr/local/cuda"
    return None, None


def nvcc_facts():
    home, source = cuda_home()
    on_path = shutil.which("nvcc")
    in_home = os.path.join(home, "bin", "nvcc") if home else None
    path = in_home if in_home and os.path.isfile(in_home) else None
    facts = {"cuda_home": home, "cuda_home_source": source, "path": path, "on_path": on_path,
             "version": None, "line": None, "path_version": None,
             "cuda_h": bool(home) and os.path.isfile(os.path.join(home, "include", "cuda.h"))}
    if path:
        facts["version"], facts["line"] = version_of(path, r"release (\d+\.\d+)")
    if on_path and (not path or os.path.realpath(on_path) != os.path.realpath(path)):
        facts["path_version"], _ = version_of(on_path, r"release (\d+\.\d+)")
    return facts


def tool(names, pattern, extra_dirs=()):
    for name in names:
        for directory in extra_dirs:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                version, line = version_of(candidate, pattern)
                return {"path": candidate, "version": version, "line": line, "on_path": False}
        found = shutil.which(name)
        if found:
            version, line = version_of(found, pattern)
            return {"path": found, "version": version, "line": line, "on_path": True}
    return None


def compiler_facts():
    names = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    facts = tool(names, r"(\d+\.\d+(?:\.\d+)?)")
    if facts is not None:
        facts["kind"] = "clang" if "clang" in (facts.get("line") or "") else "gcc"
        facts["cxx"] = shutil.which(os.environ.get("CXX") or "c++") or shutil.which("g++")
    return facts


def ninja_facts():
    scripts = sysconfig.get_path("scripts")
    path_dirs = os.environ.get("PATH", "").split(os.pathsep)
    found = tool(["ninja"], r"(\d+\.\d+(?:\.\d+)?)")
    if found is None and scripts and scripts not in path_dirs:
        # Installed into the target venv (pip install ninja) but the venv is not on PATH.
        found = tool(["ninja"], r"(\d+\.\d+(?:\.\d+)?)", extra_dirs=[scripts])
    return found


def memory_facts():
    facts = {"total_mib": None, "available_mib": None, "cgroup_limit_mib": None}
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                value = rest.strip().split()
                if key == "MemTotal" and value:
                    facts["total_mib"] = int(value[0]) // 1024
                elif key == "MemAvailable" and value:
                    facts["available_mib"] = int(value[0]) // 1024
    except (OSError, ValueError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (1 << 60):
            facts["cgroup_limit_mib"] = int(text) // (1024 * 1024)
        break
    return facts


def add_library(found, path, source):
    name = os.path.basename(path)
    if CUDA_LIB.match(name):
        entry = {"path": path, "source": source}
        if entry not in found.setdefault(name, []):
            found[name].append(entry)


def ldconfig_libraries(found):
    exe = shutil.which("ldconfig") or next((p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig")
                                             if os.path.isfile(p)), None)
    if not exe:
        return
    code, out = run([exe, "-p"])
    if code != 0:
        return
    for line in out.splitlines():
        match = re.match(r"^\s*(\S+)\s+\(.*\)\s+=>\s+(\S+)\s*$", line)
        if match and match.group(1) == os.path.basename(match.group(2)):
            add_library(found, match.group(2), "ldconfig")


def libraries(sp_dirs):
    """CUDA libraries the loader or torch can reach: nvidia-* wheels' lib folders, torch/lib,
    LD_LIBRARY_PATH, the ldconfig cache."""
    found = {}
    for sp in sp_dirs:
        for path in sorted(glob.glob(os.path.join(sp, "nvidia", "*", "lib", "lib*.so*"))):
            add_library(found, path, "site-packages")
        for path in sorted(glob.glob(os.path.join(sp, "torch", "lib", "lib*.so*"))):
            add_library(found, path, "torch/lib")
    for directory in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if directory:
            for path in sorted(glob.glob(os.path.join(directory, "lib*.so*"))):
                add_library(found, path, "LD_LIBRARY_PATH")
    ldconfig_libraries(found)
    return found


def torch_facts(sp_dirs):
    """torch/version.py as text: __version__, cuda, hip. No import."""
    for sp in sp_dirs:
        path = os.path.join(sp, "torch", "version.py")
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            facts = {"version_py": path}
            for key in ("__version__", "cuda", "hip"):
                pattern = r"^" + re.escape(key) + r"\s*(?::\s*[^=]+)?=\s*(?:['\"]([^'\"]*)['\"]|None)"
                match = re.search(pattern, text, re.M)
                facts[key.strip("_")] = match.group(1) if match else None
            return facts
    return None


def torch_import():
    """Only with --import-torch: what torch itself says (slow; may fail on missing libraries)."""
    try:
        import torch  # noqa: F401 (the point is to import it)
    except Exception as exc:  # the error text is the finding
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    facts = {"ok": True, "version": getattr(torch, "__version__", None),
             "cuda": getattr(getattr(torch, "version", None), "cuda", None)}
    try:
        facts["cuda_available"] = bool(torch.cuda.is_available())
        facts["device_count"] = int(torch.cuda.device_count())
    except Exception as exc:
        facts["cuda_error"] = f"{type(exc).__name__}: {exc}"
    return facts


def document(argv, facts, sp, seen):
    """The ``cuda`` document: ``facts`` are probe.py's platform facts, ``sp`` the site-packages folders,
    ``seen`` those and the system's a venv sees (probe.py's ``seen_site_dirs``)."""
    driver = driver_from_libcuda()
    if not driver["found"] and not os.environ.get("STACKSYNC_LIBCUDA"):
        driver = driver_from_nvidia_smi(driver)
    info = {
        "probe_cuda": 1,
        "python": {"executable": sys.executable, "version": platform.python_version(),
                   "soabi": sysconfig.get_config_var("SOABI"), "prefix": sys.prefix, "site_packages": sp},
        "platform": {"system": facts["system"], "machine": facts["machine"]},
        "driver": driver,
        "nvcc": nvcc_facts(),
        "ninja": ninja_facts(),
        "compiler": compiler_facts(),
        "memory": memory_facts(),
        "cpu_count": os.cpu_count(),
        "max_jobs": os.environ.get("MAX_JOBS"),
        "glibc": facts["glibc"],
        "libraries": libraries(seen),
        "ld_library_path": os.environ.get("LD_LIBRARY_PATH"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "torch": torch_facts(seen),
    }
    if "--import-torch" in argv:
        info["torch_import"] = torch_import()
    return info
