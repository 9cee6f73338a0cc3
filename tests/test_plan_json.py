"""``plan --json`` (issue 21): the document matches docs/plan-json.schema.json; the checker itself
rejects what breaks the schema. The end-to-end checks (a real target, the CLI's stdout) are in
test_sync.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from schemacheck import errors

from stacksync.sync.plan import PLAN_JSON_SCHEMA, Action, Plan, plan_document

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "plan-json.schema.json").read_text())


def _doc(plan: Plan, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {"python": "/t/bin/python", "python_version": "3.11.7", "profile": "demo",
                               "lock": "locks/demo/requirements.txt", "deferred_sources": {}}
    base.update(kw)
    return plan_document(plan, **base)  # type: ignore[arg-type]


def test_a_plan_with_every_kind_of_action_matches_the_schema() -> None:
    n = canonicalize_name
    plan = Plan(phases={"base": [Action("base", n("torch"), "upgrade", "2.3.0", "2.4.0"),
                                 Action("base", n("numpy"), "keep", "1.26.4", "1.26.4")],
                        "rest": [Action("rest", n("requests"), "install", None, "2.32.3"),
                                 Action("rest", n("six"), "remove", "1.16.0", None, "not in the lock"),
                                 Action("rest", n("idna"), "downgrade", "3.8", "3.7")],
                        "deferred": [Action("deferred", n("flash-attn"), "reinstall", "2.6.3", "2.6.3",
                                            "torch changed")]},
                installers=["pip 24.0"])
    doc = _doc(plan, deferred_sources={"flash-attn": "build from the sdist"})
    assert errors(doc, SCHEMA) == []
    assert doc["schema"] == PLAN_JSON_SCHEMA and doc["verdict"] == "changes"
    assert doc["counts"] == {"install": 1, "upgrade": 1, "downgrade": 1, "reinstall": 1, "remove": 1, "keep": 1}
    assert json.loads(json.dumps(doc)) == doc


def test_an_empty_plan_is_in_sync_unless_damaged() -> None:
    keep = Plan(phases={"base": [], "rest": [Action("rest", canonicalize_name("six"), "keep", "1.0", "1.0")],
                        "deferred": []})
    assert _doc(keep)["verdict"] == "in-sync" and errors(_doc(keep), SCHEMA) == []
    assert _doc(keep, damaged=True)["verdict"] == "changes"


def test_the_variant_and_why_are_in_the_document() -> None:
    variant = {"name": "cu121", "why": "a driver with CUDA 12.2, platform linux_x86_64: the highest CUDA variant it "
                                       "supports (cuda 12.1)", "lock_folder": "locks/demo/cu121"}
    doc = _doc(Plan(), variant=variant, lock="locks/demo/cu121/requirements.txt")
    assert errors(doc, SCHEMA) == [] and doc["variant"] == variant
    assert _doc(Plan())["variant"] is None and errors(_doc(Plan()), SCHEMA) == []  # a profile without variants
    broken = _doc(Plan(), variant={"name": "cu121"})
    assert errors(broken, SCHEMA)[0] == "$.variant: missing 'why'"


@pytest.mark.parametrize("breakage, message", [
    (lambda d: d.pop("verdict"), "$: missing 'verdict'"),
    (lambda d: d.pop("variant"), "$: missing 'variant'"),
    (lambda d: d.update(verdict="maybe"), "$.verdict: 'maybe' is not one of"),
    (lambda d: d["phases"]["rest"].append({"name": "x", "action": "keep", "installed": 1, "locked": None,
                                           "reason": ""}), "$.phases.rest[0].installed: int is not string/null"),
    (lambda d: d.update(extra=1), "$: unexpected key 'extra'"),
    (lambda d: d["counts"].update(keep="1"), "$.counts.keep: str is not integer"),
])
def test_the_checker_rejects_what_breaks_the_schema(breakage: object, message: str) -> None:
    doc = _doc(Plan())
    breakage(doc)  # type: ignore[operator]
    found = errors(doc, SCHEMA)
    assert found and found[0].startswith(message), found
