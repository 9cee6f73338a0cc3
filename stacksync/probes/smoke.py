"""Import modules in the interpreter that runs this file; print one JSON document.

Runs *inside a target interpreter* (CPython >= 3.8): standard library only. stacksync runs it as
``python -I scripts/smoke.py --json-out FILE MODULE...`` after each sync phase: the document goes
to FILE, and whatever the imports print on stdout stays out of it (the caller shows it).

Output: {"smoke": 1, "modules": [{"name": ..., "ok": true|false, "error": "ImportError: ...",
"seconds": ...}]}. Exit status 0 even when an import fails: the caller reads the document.
"""

import importlib
import json
import sys
import time


def try_import(name):
    start = time.perf_counter()
    try:
        importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # an extension's import can raise anything, SystemExit included
        text = f"{type(exc).__name__}: {exc}"
        return {"name": name, "ok": False, "error": text, "seconds": time.perf_counter() - start}
    return {"name": name, "ok": True, "error": None, "seconds": time.perf_counter() - start}


def json_out(argv):
    """(path or None, the other args): ``--json-out PATH`` first sends the document to a file of its
    own, so that what imported modules print on stdout (vllm does) never mixes with it."""
    if argv[:1] == ["--json-out"] and len(argv) > 1:
        return argv[1], argv[2:]
    return None, argv


def emit(doc, path):
    """Write ``doc`` as one JSON document to ``path`` (stdout when ``None``)."""
    if path is None:
        json.dump(doc, sys.stdout, indent=None, sort_keys=True)
        sys.stdout.write("\n")
        return
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=None, sort_keys=True)
        fh.write("\n")


def main(argv):
    path, names = json_out(argv)
    results = [try_import(name) for name in names]
    emit({"smoke": 1, "modules": results}, path)


if __name__ == "__main__":
    main(sys.argv[1:])
