"""The embedded registry: a manifest of artifact versions on a file system.

Layout under the root::

    .staging/                  complete files waiting to be linked into place
    <name>/type.json           the artifact type the name is bound to (written once)
    <name>/versions/vN.json    one immutable record per version
    <name>/LATEST              a hint: some published version, usually the highest
    <name>/aliases/<a>.json    movable named aliases -> version
    <name>/deleted/vN.json     garbage collection removed vN's data (the record stays)

Publishing writes the whole record to ``.staging`` first, then claims ``vN.json`` with
``os.link``, which fails if the name exists. The claim is atomic on local file systems and
NFS alike, so two writers can never share a version, a reader never sees a partial record,
and a writer killed at any moment leaves either no version or a complete one. A writer that
loses a race moves on to ``N+1`` and tries again for as long as it takes (no lock, no lost
versions). Versions are gap-free because a writer only ever claims the first missing number
after the contiguous run ``v1..vK``.

``latest`` is not stored: it is the end of that run. ``LATEST`` only says where to start
probing, so resolving ``latest`` reads the hint plus one or two ``stat`` calls however many
versions exist, and a stale hint (a writer killed before updating it) costs a few more stats,
never a wrong answer.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from nemo_runspec import atomic
from nemo_runspec.errors import ArtifactNotFoundError, CorruptRecordError, TypeMismatchError
from nemo_runspec.refs import LATEST, ArtifactRef, validate_alias, validate_name
from nemo_runspec.registry.backend import ArtifactBackend
from nemo_runspec.registry.record import ArtifactRecord, Deletion

STAGING = ".staging"


class ManifestRegistry(ArtifactBackend):
    name = "manifest"

    def __init__(self, root: str | os.PathLike[str]):
        text = str(root)
        if text.startswith("file://"):
            text = text[len("file://"):]
        self.root = Path(text).expanduser().absolute()

    def __repr__(self) -> str:
        return f"ManifestRegistry({str(self.root)!r})"

    # -- publishing -------------------------------------------------------------------------

    def publish(self, draft: ArtifactRecord) -> ArtifactRecord:
        name = validate_name(draft.name)
        self._bind_type(name, draft.type)
        versions = self._name_dir(name) / "versions"
        versions.mkdir(parents=True, exist_ok=True)
        version = self.latest_version(name) + 1
        while True:
            record = draft.model_copy(update={"version": version})
            try:
                self._create_exclusive(versions / f"v{version}.json", record.to_json())
            except FileExistsError:
                version += 1  # another writer claimed it first: take the next one
                continue
            self._raise_hint(name, version)
            return record

    def set_alias(self, name: str, alias: str, version: int) -> None:
        validate_alias(alias)
        self.resolve(ArtifactRef(name, f"v{version}"))  # the target must exist
        aliases = self._name_dir(name) / "aliases"
        aliases.mkdir(exist_ok=True)
        body = json.dumps({"version": version, "updated_at": datetime.now(timezone.utc).isoformat()})
        atomic.write_text(aliases / f"{alias}.json", body)

    # -- reading ----------------------------------------------------------------------------

    def resolve(self, ref: ArtifactRef) -> ArtifactRecord:
        name = validate_name(ref.name)
        if not (self._name_dir(name) / "type.json").is_file():
            raise ArtifactNotFoundError(
                f"no artifact named {name!r} in registry {self.root}",
                hint=self._known_names_hint(),
            )
        if ref.selector == LATEST:
            version = self.latest_version(name)
            if version == 0:
                raise ArtifactNotFoundError(f"artifact {name!r} has no published version yet")
        elif ref.version is not None:
            version = ref.version
        else:
            version = self._alias_target(name, ref.selector)
        return self.read_version(name, version)

    def read_version(self, name: str, version: int) -> ArtifactRecord:
        path = self._name_dir(name) / "versions" / f"v{version}.json"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"artifact {name!r} has no version v{version} ({self._versions_text(name)})"
            ) from None
        try:
            record = ArtifactRecord.model_validate_json(text)
        except ValidationError as err:
            raise CorruptRecordError(f"{path}: corrupt manifest: {_first_error(err)}") from None
        if record.name != name or record.version != version:
            raise CorruptRecordError(
                f"{path}: manifest says {record.name}:v{record.version}, expected {name}:v{version}"
            )
        deletion = self.deletion(name, version)
        return record if deletion is None else record.model_copy(update={"deleted": deletion})

    # -- garbage collection's marks -----------------------------------------------------------

    def deletion(self, name: str, version: int) -> Deletion | None:
        """The mark gc left on ``name:vN`` (it is deleting or has deleted its data), if any."""
        path = self._name_dir(name) / "deleted" / f"v{version}.json"
        try:
            return Deletion.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValidationError as err:
            raise CorruptRecordError(f"{path}: corrupt deletion mark: {_first_error(err)}") from None

    def mark_deleted(self, name: str, version: int, deletion: Deletion) -> None:
        directory = self._name_dir(validate_name(name)) / "deleted"
        directory.mkdir(exist_ok=True)
        atomic.write_text(directory / f"v{version}.json", deletion.model_dump_json())

    @contextmanager
    def lock(self, *, exclusive: bool) -> Iterator[None]:
        """The registry-wide lock publishers hold shared and gc holds exclusively while it marks
        versions deleted (see ``nemo_runspec.registry.gc``); never held across a long step."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def unmark_deleted(self, name: str, version: int) -> None:
        (self._name_dir(validate_name(name)) / "deleted" / f"v{version}.json").unlink(missing_ok=True)

    def latest_version(self, name: str) -> int:
        versions = self._name_dir(name) / "versions"
        version = self._read_hint(name)
        if version and not (versions / f"v{version}.json").exists():
            version = self._scan_latest(versions)  # hint ahead of reality: never written by us
        while (versions / f"v{version + 1}.json").exists():
            version += 1
        return version

    def bound_type(self, name: str) -> str | None:
        path = self._name_dir(validate_name(name)) / "type.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))["type"]
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise CorruptRecordError(f"{path}: corrupt type binding: {err}") from None

    def aliases(self, name: str) -> dict[str, int]:
        directory = self._name_dir(validate_name(name)) / "aliases"
        if not directory.is_dir():
            return {}
        result = {}
        for path in sorted(directory.glob("*.json")):
            result[path.stem] = self._read_alias_file(path)
        return result

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "type.json").is_file())

    def records(self) -> Iterator[ArtifactRecord]:
        for name in self.names():
            for version in range(1, self.latest_version(name) + 1):
                yield self.read_version(name, version)

    def verify(self, names: list[str] | None = None) -> list[str]:
        """Every inconsistency found in the registry, or under ``names`` (empty when valid)."""
        problems: list[str] = []
        for name in self.names() if names is None else [n for n in names if n in self.names()]:
            try:
                bound = self.bound_type(name)
                latest = self.latest_version(name)
                present = sorted(
                    int(p.stem[1:]) for p in (self._name_dir(name) / "versions").glob("v*.json")
                )
                if present != list(range(1, latest + 1)):
                    problems.append(f"{name}: versions are not v1..v{latest}: {present}")
                for version in present:
                    record = self.read_version(name, version)
                    if record.type != bound:
                        problems.append(f"{record.ref}: type {record.type} but name bound to {bound}")
                for alias, version in self.aliases(name).items():
                    if not 1 <= version <= latest:
                        problems.append(f"{name}: alias {alias!r} points at missing v{version}")
            except (CorruptRecordError, ArtifactNotFoundError) as err:
                problems.append(str(err))
        return problems

    # -- internals ----------------------------------------------------------------------------

    def _name_dir(self, name: str) -> Path:
        return self.root / name

    def _bind_type(self, name: str, type_name: str) -> None:
        bound = self.bound_type(name)
        if bound is None:
            self._name_dir(name).mkdir(parents=True, exist_ok=True)
            body = json.dumps({"type": type_name, "created_at": datetime.now(timezone.utc).isoformat()})
            try:
                self._create_exclusive(self._name_dir(name) / "type.json", body)
                return
            except FileExistsError:
                bound = self.bound_type(name)  # a concurrent first publisher bound it
        if bound != type_name:
            raise TypeMismatchError(
                f"artifact name {name!r} is bound to type {bound}, cannot publish a {type_name}",
                hint="use another name for this artifact type",
            )

    def _staging_file(self, body: str) -> Path:
        staging = self.root / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        path = staging / f"{uuid.uuid4().hex}.tmp"
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        return path

    def _create_exclusive(self, target: Path, body: str) -> None:
        """Create ``target`` with ``body`` all at once, or raise FileExistsError."""
        staged = self._staging_file(body)
        try:
            os.link(staged, target)
        except OSError as err:
            if err.errno == errno.EEXIST:
                raise FileExistsError(target) from None
            raise
        finally:
            staged.unlink(missing_ok=True)

    def _read_hint(self, name: str) -> int:
        try:
            return max(0, int((self._name_dir(name) / "LATEST").read_text().strip()))
        except (FileNotFoundError, ValueError):
            return 0

    def _raise_hint(self, name: str, version: int) -> None:
        # Racing writers may leave a lower hint than the newest version; readers probe forward.
        if version > self._read_hint(name):
            atomic.write_text(self._name_dir(name) / "LATEST", str(version))

    @staticmethod
    def _scan_latest(versions: Path) -> int:
        numbers = {int(p.stem[1:]) for p in versions.glob("v*.json") if p.stem[1:].isdigit()}
        version = 0
        while version + 1 in numbers:
            version += 1
        return version

    def _alias_target(self, name: str, alias: str) -> int:
        path = self._name_dir(name) / "aliases" / f"{alias}.json"
        if not path.is_file():
            known = ", ".join(sorted(self.aliases(name))) or "none"
            raise ArtifactNotFoundError(
                f"artifact {name!r} has no version or alias {alias!r} "
                f"({self._versions_text(name)}; aliases: {known})"
            )
        return self._read_alias_file(path)

    @staticmethod
    def _read_alias_file(path: Path) -> int:
        try:
            return int(json.loads(path.read_text(encoding="utf-8"))["version"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise CorruptRecordError(f"{path}: corrupt alias: {err}") from None

    def _versions_text(self, name: str) -> str:
        latest = self.latest_version(name)
        if latest == 0:
            return "no versions"
        return "versions: v1" if latest == 1 else f"versions: v1..v{latest}"

    def _known_names_hint(self) -> str:
        names = self.names()
        if not names:
            return "the registry is empty; log an artifact first or point NEMOTRON_ARTIFACTS_ROOT at another registry"
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        return f"known names: {shown}"


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "document"
    return f"{where}: {first.get('msg')}"
