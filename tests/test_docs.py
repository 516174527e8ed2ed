"""The product speaks of itself: its docs, code, configs and scripts never mention how it was made
(work sessions, issue numbers, machines lent for a while), and the README names no search run.

Real uses of the words stay allowed: a pytest fixture's ``scope="session"``, an HTTP client
session. Words that merely contain the letters ("excellent", "possession") are not hits.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ["README.md", "docs", "configs", "scripts", "phudge_lightning", "datamodules", "heads", "losses",
           "train.yaml", "setup.cfg", "pyproject.toml"]
TEXT = {".md", ".py", ".yaml", ".yml", ".sh", ".cfg", ".toml", ".txt", ".json", ".jinja"}
# A model's vocabulary holds every word of a language, these among them.
VOCABULARY = {"tokenizer.json", "vocab.txt", "vocab.json", "merges.txt"}

PROCESS = re.compile(r"(?<![a-z])sessions?(?![a-z])|\bissue\s*#?\s*\d|(?<![a-z])lent(?![a-z])", re.IGNORECASE)
REAL_USES = re.compile(r"scope\s*=\s*[\"']session[\"']|\b(requests|aiohttp|httpx)\.(Client)?Session\b|ClientSession",
                       re.IGNORECASE)
RUN_CODE = re.compile(r"\b(J\d{1,2}|P1|Q\d|E4)\b")


def scanned_files() -> list[Path]:
    files = []
    for name in SCANNED:
        path = REPO / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix in TEXT
                      and p.name not in VOCABULARY and "__pycache__" not in p.parts]
    return files


def hits(pattern: re.Pattern, path: Path, allowed: re.Pattern | None = None) -> list[str]:
    found, name = [], path.relative_to(REPO) if REPO in path.parents else path.name
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if pattern.search(line) and not (allowed and allowed.search(line)):
            found.append(f"{name}:{number}: {line.strip()[:120]}")
    return found


def test_the_scan_reads_the_product():
    names = {p.relative_to(REPO).as_posix() for p in scanned_files()}
    assert "README.md" in names and "configs/judge.yaml" in names and "phudge_lightning/judge.py" in names


def test_nothing_speaks_of_how_the_project_was_made():
    found = [hit for path in scanned_files() for hit in hits(PROCESS, path, REAL_USES)]
    assert not found, "the product mentions sessions, issue numbers or lent machines:\n" + "\n".join(found)


def test_the_readme_names_no_search_run():
    found = hits(RUN_CODE, REPO / "README.md")
    assert not found, "run codes belong in docs/experiments.md:\n" + "\n".join(found)


def test_the_pattern_tells_real_uses_from_process_talk(tmp_path):
    probe = tmp_path / "probe.md"
    probe.write_text("measured in the third session\nsee issue 14\nno GPU was lent\n"
                     '@pytest.fixture(scope="session")\nclient = requests.Session()\nan excellent, silent possession\n')
    found = hits(PROCESS, probe, REAL_USES)
    assert [hit.split(":")[1] for hit in found] == ["1", "2", "3"]


def test_the_docs_link_to_files_that_exist():
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    pages = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
    broken = [f"{page.relative_to(REPO)}: {target}" for page in pages for target in link.findall(page.read_text())
              if "://" not in target and not (page.parent / target).exists()]
    assert not broken, "links to nothing:\n" + "\n".join(broken)
