"""Every document a tracked file cites is in the repository, and every cited section is in it.

Scanned: the tracked ``*.py``, ``*.toml``, ``*.md``, ``*.yaml``/``*.yml``, ``*.sh``, ``*.sbatch``
files and Dockerfiles. Checked:

- a ``NAME.md`` token (a bare name or a path; URLs aside) names a tracked file, relative to the
  repository root, to the citing file's folder or to one of that folder's parents;
- a section reference ``docs/NAME.md §N`` / ``§N.M`` (also ``§a, §b``, ``§a and §b`` and ranges
  ``§a–b``) names a numbered heading of that page (``## N. Title`` / ``### N.M Title``);
- names of documents that were never in the repository, cited without ``.md`` (``NOTES §…``,
  ``ALGORITHMS``, ``PLATFORM-NOTES``), are refused outright.

git ls-files and regular expressions only: well under a second.
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
SELF = "tests/test_doc_references.py"
_NOT_SOURCE = ("__pycache__", ".egg-info", "lrsweep-results")
SUFFIXES = (".py", ".toml", ".md", ".yaml", ".yml", ".sh", ".sbatch")

URL = re.compile(r"(?<![\w+.-])[A-Za-z][\w+.-]*://\S+")
_PATH = re.compile(r"(?:[\w-][\w.-]*/)*[\w-][\w.-]*\.md")
_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/")
MD_END = re.compile(r"\.md(?![\w-])")
_SEC = r"\d+(?:\.\d+)?"
_ITEM = rf"§\s*{_SEC}(?:\s*[–-]\s*§?\s*{_SEC})?"
SECTIONS_AFTER = re.compile(rf"`?\s*({_ITEM}(?:(?:,\s*|\s+and\s+){_ITEM})*)")
HEADING = re.compile(rf"^#{{1,6}}\s+({_SEC})\.?\s", re.MULTILINE)
NEVER_IN_REPO = re.compile(r"(?<![\w-])NOTES\s*§|\bALGORITHMS(?:-NOTES)?\b|\bPLATFORM-NOTES\b")


@cache
def tracked() -> frozenset[str]:
    """The repository's files: ``git ls-files``, or, in a copy without git metadata (a source
    archive), every file outside hidden, cache and build folders."""
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        found = []
        for folder, dirs, names in os.walk(ROOT):
            dirs[:] = [d for d in dirs if not d.startswith(".") and not d.endswith(_NOT_SOURCE)]
            found += [(Path(folder) / n).relative_to(ROOT).as_posix() for n in names]
        return frozenset(found)
    return frozenset(p for p in out.splitlines() if (ROOT / p).exists())


def scanned(files: frozenset[str]) -> list[str]:
    return sorted(p for p in files if p != SELF and (p.endswith(SUFFIXES) or PurePosixPath(p).name == "Dockerfile"))


def resolve(token: str, citing: str, files: frozenset[str]) -> str | None:
    """The tracked path ``token`` names from ``citing``: relative to the root or to the citing
    file's folder or one of its parents; ``None`` if none."""
    folder = PurePosixPath(citing).parent
    for base in (PurePosixPath(""), folder, *folder.parents):
        candidate = str(base / token) if str(base) not in ("", ".") else token
        if candidate in files:
            return candidate
    return None


def headings(path: str) -> frozenset[str]:
    return frozenset(HEADING.findall((ROOT / path).read_text(encoding="utf-8")))


def md_tokens(text: str):
    """``(start, end, token)`` for every ``NAME.md`` path token: found from its ``.md`` and
    extended backwards over path characters (linear time, even in a 20,000-character word)."""
    for m in MD_END.finditer(text):
        start = m.start()
        while start > 0 and text[start - 1] in _PATH_CHARS:
            start -= 1
        token = text[start:m.end()]
        if _PATH.fullmatch(token):
            yield start, m.end(), token


def problems_in(citing: str, text: str, files: frozenset[str], sections_of=headings) -> list[str]:
    """One line per bad reference in ``text`` (the content of ``citing``), in order."""
    if "://" in text:
        text = URL.sub(lambda m: " " * len(m.group(0)), text)  # same offsets, no URLs
    found: list[tuple[int, str]] = []
    if "NOTES" in text or "ALGORITHMS" in text:
        found += [(m.start(), f"{m.group(0)!r} names a document that is not in the repository")
                  for m in NEVER_IN_REPO.finditer(text)]
    for start, end, token in md_tokens(text):
        doc = resolve(token, citing, files)
        if doc is None:
            found.append((start, f"{token} is not a tracked file"))
            continue
        sections = SECTIONS_AFTER.match(text, end)  # may span a line break: "docs/x.md\n§2"
        if sections and sections.group(1):
            have = sections_of(doc)
            found += [(start, f"{token} has no section §{sec}")
                      for sec in re.findall(_SEC, sections.group(1)) if sec not in have]
    return [f"{citing}:{text.count(chr(10), 0, at) + 1}: {why}"
            for at, why in sorted(found, key=lambda f: f[0])]


def test_every_cited_document_and_section_exists() -> None:
    files = tracked()
    problems: list[str] = []
    for path in scanned(files):
        try:
            text = (ROOT / path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        problems += problems_in(path, text, files)
    assert not problems, f"{len(problems)} bad document reference(s):\n" + "\n".join(problems)


def test_the_check_refuses_old_and_broken_references() -> None:
    """The checker itself: each kind of bad reference is reported, good ones are not."""
    files = frozenset({"docs/equations.md", "docs/design.md", "README.md", "pkg/data/README.md", "pkg/mod.py"})
    sections = {"docs/equations.md": frozenset({"1", "1.3", "5", "5.5", "8.1", "8.2"}),
                "docs/design.md": frozenset({"4"})}

    def check(text: str) -> list[str]:
        return problems_in("pkg/mod.py", text, files, sections_of=sections.__getitem__)

    assert check("see docs/equations.md §1.3, §5.5 and §8.1–8.2; docs/design.md §4") == []
    assert check("``data/README.md`` and README.md, https://x.org/ALGORITHMS.md") == []
    assert check("(ALGORITHMS.md §2, NOTES §1.3)") == [
        "pkg/mod.py:1: 'ALGORITHMS' names a document that is not in the repository",
        "pkg/mod.py:1: ALGORITHMS.md is not a tracked file",
        "pkg/mod.py:1: 'NOTES §' names a document that is not in the repository",
    ]
    assert check("line one\n(docs/equations.md\n§9.9)") == ["pkg/mod.py:2: docs/equations.md has no section §9.9"]
    assert check("ALGORITHMS-NOTES §7.2 / PLATFORM-NOTES") == [
        "pkg/mod.py:1: 'ALGORITHMS-NOTES' names a document that is not in the repository",
        "pkg/mod.py:1: 'PLATFORM-NOTES' names a document that is not in the repository",
    ]
    assert check("DESIGN.md, docs/store.md") == [
        "pkg/mod.py:1: DESIGN.md is not a tracked file",
        "pkg/mod.py:1: docs/store.md is not a tracked file",
    ]
    assert check("docs/equations.md §5.9 and `docs/equations.md` §1–§7") == [
        "pkg/mod.py:1: docs/equations.md has no section §5.9",
        "pkg/mod.py:1: docs/equations.md has no section §7",
    ]
