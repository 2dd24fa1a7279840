"""Typed config groups: a Pydantic base class and one-line errors that name the key.

Every config group (``train``, ``model``, ``launcher``, ...) is one :class:`GroupSchema`
subclass: the one place for its keys, types, ranges, cross-field rules and defaults. Unknown
keys are errors (``extra="forbid"``): a key that is accepted must do something. A composed
config is validated once, where a step receives it, and a bad value reads
``train.steps must be an integer >= 1, got 'abc'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ConfigDict, ValidationError

from nemo_runspec.errors import ConfigError

S = TypeVar("S", bound=BaseModel)
_HINT = "set it on the command line (key=value); --cfg job prints the composed config"


class GroupSchema(BaseModel):
    """A config group's schema. Frozen: a validated config is read, never edited."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


def validate(schema: type[S], data: Any, prefix: str = "") -> S:
    """``data`` as a ``schema`` instance; the first problem as a one-line ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'the config'} must be a mapping of keys, got {_shown(data)}")
    try:
        return schema.model_validate(dict(data))
    except ValidationError as err:
        raise _config_error(schema, err.errors()[0], prefix) from None


def validate_known(schema: type[BaseModel], data: Mapping[str, Any], unknown: set[str], prefix: str = "") -> None:
    """Check ``data`` against ``schema`` where it is known: the keys in ``unknown`` (values that
    cannot be resolved yet) are left out, and no problem of theirs is reported."""
    try:
        schema.model_validate(dict(data))
    except ValidationError as err:
        for error in err.errors():
            loc = error["loc"]
            if loc and str(loc[0]) in unknown or (not loc and unknown):
                continue  # the key, or a rule across keys some of which are not known yet
            raise _config_error(schema, error, prefix) from None


def _config_error(schema: type[BaseModel], error: Mapping[str, Any], prefix: str) -> ConfigError:
    loc = [str(part) for part in error["loc"]]
    key = _key(prefix, error["loc"])
    kind, got = error["type"], _shown(error.get("input"))
    if kind == "extra_forbidden":
        owner = _field_owner(schema, loc[:-1])
        known = ", ".join(sorted(owner.model_fields)) if owner is not None else ""
        return ConfigError(f"unknown key {key}", hint=f"known keys there: {known}" if known else None)
    if kind == "missing":
        return ConfigError(f"{key} is missing", hint=f"set it on the command line: {key}=...")
    if kind == "too_short":
        return ConfigError(f"{key} must hold at least {error['ctx']['min_length']} item(s), got {got}", hint=_HINT)
    if kind in ("value_error", "assertion_error"):
        message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if message.startswith("must"):
            return ConfigError(f"{key} {message}", hint=_HINT)
        return ConfigError(f"{key}: {message}" if key else message, hint=_HINT)
    expected = _expected(schema, loc)
    if expected:
        return ConfigError(f"{key} must be {expected}, got {got}", hint=_HINT)
    return ConfigError(f"{key}: {str(error['msg']).lower()}, got {got}", hint=_HINT)


def _key(prefix: str, loc: tuple) -> str:
    """``data_prep.blend[0].weight``: list positions in brackets, as a user writes them."""
    key = prefix
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def _expected(schema: type[BaseModel], loc: list[str]) -> str | None:
    """What the field at ``loc`` takes, in words: ``an integer >= 1``, ``one of 'a', 'b'``."""
    owner = _field_owner(schema, loc[:-1])
    field = owner.model_fields.get(loc[-1]) if owner is not None and loc else None
    if field is None:
        return None
    words = _type_words(field.annotation)
    if words is None:
        return None
    bounds = [b for b in (_bound_words(m) for m in field.metadata) if b]
    return f"{words} {' and '.join(bounds)}" if bounds else words


def _type_words(annotation: Any) -> str | None:
    union = get_origin(annotation) in (Union, UnionType)
    options = [a for a in get_args(annotation) if a is not type(None)] if union else [annotation]
    nullable = union and len(options) < len(get_args(annotation))
    if len(options) != 1:
        return None
    kind = options[0]
    if get_origin(kind) is Literal:
        words = "one of " + ", ".join(repr(v) for v in get_args(kind))
    elif kind is bool:
        words = "true or false"
    elif kind is int:
        words = "an integer"
    elif kind is float:
        words = "a number"
    elif kind is str:
        words = "a string"
    else:
        return None
    return f"{words} (or null)" if nullable else words


def _bound_words(meta: Any) -> str | None:
    for cls, attribute, sign in ((annotated_types.Ge, "ge", ">="), (annotated_types.Gt, "gt", ">"),
                                 (annotated_types.Le, "le", "<="), (annotated_types.Lt, "lt", "<")):
        if isinstance(meta, cls):
            return f"{sign} {getattr(meta, attribute)}"
    return None


def _field_owner(schema: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    """The schema class that holds the field at the end of ``path`` (nested groups)."""
    owner: Any = schema
    for part in path:
        field = owner.model_fields.get(part) if isinstance(owner, type) and issubclass(owner, BaseModel) else None
        if field is None:
            return None if not part.isdigit() else owner
        owner = _model_in(field.annotation)
        if owner is None:
            return None
    return owner if isinstance(owner, type) and issubclass(owner, BaseModel) else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
