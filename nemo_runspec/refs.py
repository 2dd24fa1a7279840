"""Artifact names, aliases and references (``art://name:version``).

A name is 1-128 characters from ``[A-Za-z0-9._-]``, starts with a letter or digit and never
contains ``..``: it is used as a directory name under the registry root, so this character set
is what keeps every write inside the root. A version selector is ``latest``, ``vN`` (N >= 1)
or an alias (same character set as a name, not ``latest`` and not ``v`` followed by digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nemo_runspec.errors import InvalidNameError

URI_SCHEME = "art://"
LATEST = "latest"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_VERSION_RE = re.compile(r"v([1-9][0-9]*)")
_VERSION_LIKE_RE = re.compile(r"v[0-9]+")
NAME_RULE = "1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit, no '..'"


def validate_name(name: str, *, what: str = "artifact name") -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name:
        raise InvalidNameError(f"invalid {what} {name!r}", hint=f"a {what} is {NAME_RULE}")
    return name


def validate_alias(alias: str) -> str:
    validate_name(alias, what="alias")
    if alias == LATEST or _VERSION_LIKE_RE.fullmatch(alias):
        raise InvalidNameError(
            f"alias {alias!r} is reserved", hint="'latest' and 'vN' are managed by the registry"
        )
    return alias


def parse_version(selector: str) -> int | None:
    """The number of a ``vN`` selector, or None for ``latest`` and aliases."""
    match = _VERSION_RE.fullmatch(selector)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class ArtifactRef:
    """A parsed reference: ``name`` plus ``selector`` (``latest``, ``vN`` or an alias)."""

    name: str
    selector: str = LATEST

    @property
    def version(self) -> int | None:
        return parse_version(self.selector)

    @property
    def uri(self) -> str:
        return f"{URI_SCHEME}{self.name}:{self.selector}"

    def __str__(self) -> str:
        return f"{self.name}:{self.selector}"

    @classmethod
    def parse(cls, text: str) -> ArtifactRef:
        """Parse ``art://name[:sel]`` or ``name[:sel]``; the selector defaults to ``latest``."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidNameError(f"malformed artifact reference {text!r}", hint=_REF_HINT)
        body = text.strip()
        if body.startswith(URI_SCHEME):
            body = body[len(URI_SCHEME):]
        elif "://" in body:
            raise InvalidNameError(
                f"malformed artifact reference {text!r}: scheme must be art://", hint=_REF_HINT
            )
        name, sep, selector = body.partition(":")
        if sep and not selector:
            raise InvalidNameError(f"malformed artifact reference {text!r}: empty version", hint=_REF_HINT)
        if ":" in selector:
            raise InvalidNameError(f"malformed artifact reference {text!r}: more than one ':'", hint=_REF_HINT)
        try:
            validate_name(name)
            if selector and selector != LATEST and parse_version(selector) is None:
                validate_alias(selector)
        except InvalidNameError as err:
            raise InvalidNameError(f"malformed artifact reference {text!r}: {err}", hint=_REF_HINT) from None
        return cls(name, selector or LATEST)


def is_artifact_ref(text: str) -> bool:
    """True for ``art://...`` and ``name:selector``; bare words and paths count as files."""
    if not isinstance(text, str):
        return False
    if text.startswith(URI_SCHEME):
        return True
    if ":" not in text or "/" in text:
        return False
    try:
        ArtifactRef.parse(text)
    except InvalidNameError:
        return False
    return True


_REF_HINT = "write art://NAME:VERSION, e.g. art://my-data:latest, art://my-data:v3 or art://my-data:production"
