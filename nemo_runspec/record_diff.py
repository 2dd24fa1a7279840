"""What differs between two versions: typed fields, inputs, resolved config and contents."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from nemo_runspec.registry.record import ArtifactRecord

_MISSING = "-"


def diff_records(a: ArtifactRecord, b: ArtifactRecord) -> list[tuple[str, str, str]]:
    """(what, value in ``a``, value in ``b``) for everything that differs, in a stable order:
    type, typed fields, inputs, the resolved config (``metadata.config``, by dotted key), the
    root digest of the files."""
    rows: list[tuple[str, str, str]] = []
    if a.type != b.type:
        rows.append(("type", a.type, b.type))
    rows += _differing("field ", a.fields, b.fields)
    only_a = [u for u in a.inputs if u not in b.inputs]
    only_b = [u for u in b.inputs if u not in a.inputs]
    if only_a or only_b:
        rows.append(("inputs", "\n".join(only_a) or _MISSING, "\n".join(only_b) or _MISSING))
    config_a, config_b = a.metadata.get("config"), b.metadata.get("config")
    if isinstance(config_a, Mapping) and isinstance(config_b, Mapping):
        rows += _differing("config ", dict(_flat(config_a)), dict(_flat(config_b)))
    root_a = a.contents.root[:16] if a.contents else _MISSING
    root_b = b.contents.root[:16] if b.contents else _MISSING
    if root_a != root_b:
        rows.append(("contents (root digest)", root_a, root_b))
    return rows


def _differing(prefix: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for key in sorted(a.keys() | b.keys()):
        left, right = _text(a, key), _text(b, key)
        if left != right:
            rows.append((f"{prefix}{key}", left, right))
    return rows


def _flat(value: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, item in value.items():
        if isinstance(item, Mapping) and item:
            yield from _flat(item, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", item


def _text(mapping: Mapping[str, Any], key: str) -> str:
    if key not in mapping:
        return _MISSING
    value = mapping[key]
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
