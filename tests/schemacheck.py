"""A small JSON Schema checker for the schemas this repository ships (docs/*.schema.json): type (one or
a list), enum, required, properties, additionalProperties (false or a schema), items and local $ref.
Enough for those files, no dependency; it refuses a keyword it does not know, so a schema cannot grow
past what is checked."""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "array": (list,), "string": (str,), "integer": (int,),
                                       "number": (int, float), "boolean": (bool,), "null": (type(None),)}
_KNOWN = {"$schema", "$id", "$defs", "$ref", "title", "description", "type", "enum", "required", "properties",
          "additionalProperties", "items"}


def errors(doc: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, where: str = "$") -> list[str]:
    """Every place ``doc`` breaks ``schema`` (empty: it conforms)."""
    root = root if root is not None else schema
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"{where}: schema keyword(s) this checker does not know: {sorted(unknown)}")
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        return errors(doc, root["$defs"][ref.split("/")[-1]], root, where)
    found: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(isinstance(doc, _TYPES[n]) and not (n in ("integer", "number") and isinstance(doc, bool))
                 for n in names)
        if not ok:
            return [f"{where}: {type(doc).__name__} is not {'/'.join(names)}"]
    if "enum" in schema and doc not in schema["enum"]:
        found.append(f"{where}: {doc!r} is not one of {schema['enum']}")
    if isinstance(doc, dict):
        found += [f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in doc]
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, value in doc.items():
            if key in props:
                found += errors(value, props[key], root, f"{where}.{key}")
            elif extra is False:
                found.append(f"{where}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                found += errors(value, extra, root, f"{where}.{key}")
    if isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            found += errors(item, schema["items"], root, f"{where}[{i}]")
    return found
