"""Build the small English pretraining samples in nemotron/data/samples/pretrain/.

Why: data-prep and tokenizer code needs a few hundred KB of real, redistributable
English text that can be rebuilt offline. Everything here comes from the running
CPython 3.11 standard library (PSF License), so the script needs no network and
its output is byte-identical across runs on the same Python build.

Outputs (JSONL, one {"id": ..., "text": ...} object per line, sorted by id order):
  python_docs.jsonl        the Language Reference topics in pydoc_data.topics,
                           split into ~1-4 KB documents at blank lines
  python_docstrings.jsonl  module/class/function docstrings (inspect.getdoc) of
                           a fixed list of stdlib modules, one document per module,
                           split into <= 4 KB pieces at blank lines
  gettysburg.txt           the Gettysburg Address (Bliss copy, public domain)

Usage: .venv/bin/python scripts/make_sample_corpus.py
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import re
import warnings
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent.parent / "nemotron" / "data" / "samples" / "pretrain"
MAX_BYTES = 4096  # upper bound for one document
MIN_DOC_CHARS = 40  # skip docstrings shorter than this

# Pure-Python stdlib modules: module, class, function and method docstrings.
MODULES = [
    "abc", "argparse", "ast", "base64", "calendar", "collections", "contextlib",
    "csv", "dataclasses", "difflib", "email.message", "enum", "fractions",
    "functools", "gzip", "heapq", "hmac", "http.client", "inspect", "json",
    "logging", "pathlib", "pprint", "random", "secrets", "shutil", "statistics",
    "string", "subprocess", "tarfile", "tempfile", "textwrap", "tokenize",
    "typing", "unittest.case", "urllib.parse", "uuid", "zipfile",
]
# Implemented (mostly) in C: only the module docstring is used.
MODULE_DOC_ONLY = ["datetime", "hashlib", "itertools"]

GETTYSBURG = """\
Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in Liberty, and dedicated to the proposition that all men are created equal.

Now we are engaged in a great civil war, testing whether that nation, or any nation so conceived and so dedicated, can long endure. We are met on a great battle-field of that war. We have come to dedicate a portion of that field, as a final resting place for those who here gave their lives that that nation might live. It is altogether fitting and proper that we should do this.

But, in a larger sense, we can not dedicate—we can not consecrate—we can not hallow—this ground. The brave men, living and dead, who struggled here, have consecrated it, far above our poor power to add or detract. The world will little note, nor long remember what we say here, but it can never forget what they did here. It is for us the living, rather, to be dedicated here to the unfinished work which they who fought here have thus far so nobly advanced. It is rather for us to be here dedicated to the great task remaining before us—that from these honored dead we take increased devotion to that cause for which they gave the last full measure of devotion—that we here highly resolve that these dead shall not have died in vain—that this nation, under God, shall have a new birth of freedom—and that government of the people, by the people, for the people, shall not perish from the earth.

Abraham Lincoln
November 19, 1863
"""


def nbytes(s: str) -> int:
    return len(s.encode("utf-8"))


def split_text(text: str, max_bytes: int = MAX_BYTES) -> list[str]:
    """Split text into pieces of at most ~max_bytes at blank lines, keeping text as is.

    The number of pieces is ceil(size / max_bytes) and each piece is closed once it
    reaches the average size, so pieces come out roughly even (no tiny tails).
    Separators inside a piece are kept verbatim; a single paragraph larger than
    max_bytes is cut at line boundaries instead.
    """
    text = "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).rstrip()
    total = nbytes(text)
    if total <= max_bytes:
        return [text]
    target = total / math.ceil(total / max_bytes)
    # parts alternates paragraph, separator, paragraph, ...
    parts = re.split(r"(\n{2,})", text)
    units: list[tuple[str, str]] = []  # (paragraph, separator before it)
    for i in range(0, len(parts), 2):
        sep = parts[i - 1] if i else ""
        para = parts[i]
        if nbytes(para) > max_bytes:  # oversized paragraph: fall back to lines
            for j, line in enumerate(para.split("\n")):
                units.append((line, sep if j == 0 else "\n"))
        else:
            units.append((para, sep))
    pieces: list[str] = []
    cur = ""
    for para, sep in units:
        if cur and (nbytes(cur) >= target or nbytes(cur) + nbytes(sep + para) > max_bytes):
            pieces.append(cur)
            cur = para
        else:
            cur = cur + sep + para if cur else para
    if cur:
        pieces.append(cur)
    return pieces


def docs_records() -> list[dict]:
    from pydoc_data.topics import topics

    records = []
    for topic in sorted(topics):
        for n, piece in enumerate(split_text(topics[topic])):
            records.append({"id": f"{topic}-{n}", "text": piece})
    return records


def member_docstrings(mod, name: str) -> list[str | None]:
    """Own docstrings of public classes (and their methods/properties) and functions
    defined in module `name`, in sorted name order. Own only: inspect.getdoc alone
    would copy a base class's docstring onto every undocumented override."""
    docs = []
    for attr, obj in sorted(vars(mod).items()):
        if attr.startswith("_") or getattr(obj, "__module__", None) != name:
            continue
        if inspect.isfunction(obj):
            docs.append(obj.__doc__ and inspect.getdoc(obj))
        elif inspect.isclass(obj):
            docs.append(obj.__doc__ and inspect.getdoc(obj))
            for mname, member in sorted(vars(obj).items()):
                if mname.startswith("__") and mname != "__init__":
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if inspect.isfunction(member) or isinstance(member, property):
                    docs.append(member.__doc__ and inspect.getdoc(member))
    return docs


def module_docstrings(name: str) -> list[str]:
    """Module docstring, then (unless C-only) its members' docstrings;
    short ones and exact duplicates dropped."""
    mod = importlib.import_module(name)
    docs = [inspect.getdoc(mod)]
    if name not in MODULE_DOC_ONLY:
        with warnings.catch_warnings():  # touching typing.io / typing.re warns
            warnings.simplefilter("ignore", DeprecationWarning)
            docs += member_docstrings(mod, name)
    seen, out = set(), []
    for d in docs:
        if d and len(d) >= MIN_DOC_CHARS and d not in seen:
            seen.add(d)
            out.append(d)
    return out


def docstring_records() -> list[dict]:
    records = []
    for name in sorted(MODULES + MODULE_DOC_ONLY):
        text = "\n\n".join(module_docstrings(name))
        if not text:  # nothing reached MIN_DOC_CHARS
            continue
        for n, piece in enumerate(split_text(text)):
            records.append({"id": f"{name}-{n}", "text": piece})
    return records


def write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"{path.relative_to(OUT_DIR.parents[3])}: {len(records)} docs, {path.stat().st_size} bytes")


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_jsonl(OUT_DIR / "python_docs.jsonl", docs_records())
    write_jsonl(OUT_DIR / "python_docstrings.jsonl", docstring_records())
    (OUT_DIR / "gettysburg.txt").write_text(GETTYSBURG, encoding="utf-8", newline="\n")


if __name__ == "__main__":
    main()
