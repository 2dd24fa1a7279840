"""Install nemotron beside a base image's Python stack without replacing any of it.

Used by docker/gpu.Dockerfile and docker/rl.Dockerfile, run with the base image's own Python:

    python docker/base_env.py pins [PATTERN ...] > pins.txt
        ``name==version`` for every installed distribution whose name matches a pattern
        (fnmatch on the normalised name, e.g. ``torch*``; no pattern: all of them). Passed to
        pip/uv as ``-c pins.txt``, it stops the resolver from replacing those packages.
    python docker/base_env.py missing PROJECT_DIR [--exclude NAME ...] > missing.txt
        The project's requirements (pyproject.toml, markers evaluated here) whose distribution
        is not installed at all. Installed ones are left as the base has them; where the base's
        version is outside our range a note goes to stderr.
    python docker/base_env.py check pins.txt
        Exit 1, naming them, if any pinned distribution is now missing or at another version.

Standard library only (``packaging`` from the environment or pip's vendored copy), so it runs
in any base image.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - environments without packaging still have pip's copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import InvalidVersion, Version


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """Canonical name -> version of each installed distribution (the first one on sys.path wins)."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name, version = dist.metadata["Name"], dist.version
        if name and version:
            found.setdefault(canonical(name), version)
    return found


def pins(patterns: list[str]) -> list[str]:
    patterns = [canonical(p) for p in patterns] or ["*"]
    out = []
    for name, version in sorted(installed().items()):
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            try:  # normalised (v1.2 -> 1.2), as pip and uv read it
                out.append(f"{name}=={Version(version)}")
            except InvalidVersion:
                print(f"base_env: not pinning {name}: its version {version!r} does not parse", file=sys.stderr)
    return out


def missing(project_dir: Path, exclude: list[str]) -> list[str]:
    project = tomllib.loads((project_dir / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    have, skip = installed(), {canonical(n) for n in exclude}
    out = []
    for line in project.get("dependencies", []):
        req = Requirement(line)
        name = canonical(req.name)
        if name in skip or (req.marker is not None and not req.marker.evaluate()):
            continue
        if name not in have:
            out.append(str(req))
            continue
        try:
            ok = req.specifier.contains(Version(have[name]), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            print(f"base_env: keeping the base's {name} {have[name]} (nemotron asks {req.specifier})", file=sys.stderr)
    return out


def check(pins_file: Path) -> list[str]:
    have = installed()
    changed = []
    for line in pins_file.read_text(encoding="utf-8").split():
        name, version = line.split("==", 1)
        now = have.get(name)
        try:
            same = now is not None and Version(now) == Version(version)
        except InvalidVersion:
            same = False
        if not same:
            changed.append(f"{name}: pinned {version}, now {now or 'not installed'}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pins")
    p.add_argument("patterns", nargs="*")
    m = sub.add_parser("missing")
    m.add_argument("project_dir", type=Path)
    m.add_argument("--exclude", action="append", default=[])
    c = sub.add_parser("check")
    c.add_argument("pins_file", type=Path)
    args = parser.parse_args(argv)

    if args.command in ("pins", "missing"):
        lines = pins(args.patterns) if args.command == "pins" else missing(args.project_dir, args.exclude)
        if lines:  # nothing at all when empty, so `[ -s file ]` tells
            print("\n".join(lines))
    else:
        changed = check(args.pins_file)
        if changed:
            print("base_env: the base image's packages were changed:\n  " + "\n  ".join(changed), file=sys.stderr)
            return 1
        print(f"base_env: all {len(args.pins_file.read_text(encoding='utf-8').split())} pinned packages intact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
