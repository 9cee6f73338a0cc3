"""Import modules in the interpreter that runs this file; print one JSON document.

Runs *inside a target interpreter* (CPython >= 3.8): standard library only. stacksync runs it as
``python -I scripts/smoke.py MODULE...`` after each sync phase.

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


def main(argv):
    results = [try_import(name) for name in argv]
    json.dump({"smoke": 1, "modules": results}, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
