"""Every link in README.md and docs/ leads to a file inside the repository.

A clone from a forge has nothing beside it, so a link to `../somewhere` or to a file
that was moved is a dead end for the next reader. Web links (`https:` and the like)
and links within a page (`#section`) are left alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]

# [text](target) and ![alt](target), with an optional "title"; and [label]: target.
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
_FENCE = re.compile(r"^\s*(```|~~~).*?^\s*\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+\1", re.DOTALL)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def link_targets(text: str) -> list[str]:
    """The link targets of a markdown text, code blocks and code spans left out."""
    prose = _CODE_SPAN.sub("", _FENCE.sub("", text))
    return _INLINE.findall(prose) + _REFERENCE.findall(prose)


def broken_links(path: Path, root: Path) -> list[str]:
    """Why each link of `path` fails, if any: outside `root`, or no such file."""
    problems = []
    for target in link_targets(path.read_text(encoding="utf-8")):
        if _SCHEME.match(target) or target.startswith("#"):
            continue
        file_part = unquote(target.split("#", 1)[0].split("?", 1)[0])
        # A leading "/" is the repository root, as forges render it.
        base = root if file_part.startswith("/") else path.parent
        resolved = (base / file_part.lstrip("/")).resolve()
        if not resolved.is_relative_to(root.resolve()):
            problems.append(f"{path.relative_to(root)}: {target} points outside the repository")
        elif not resolved.exists():
            problems.append(f"{path.relative_to(root)}: {target} does not exist")
    return problems


@pytest.mark.parametrize("path", markdown_files(ROOT), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_inside_the_repository(path: Path) -> None:
    assert broken_links(path, ROOT) == []


def test_the_check_finds_links_outside_and_links_to_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "here.md").write_text("# here\n")
    (repo / "README.md").write_text(
        "See [the contract](../shared/docs/semantics.md), [ours](docs/here.md#here),\n"
        "[gone](docs/gone.md), ![img](/docs/missing.png), [web](https://example.com/x.md),\n"
        "[top](#top), `[code](../not/a/link.md)` and [ref].\n\n"
        "```\n[fenced](../not/a/link.md)\n```\n\n"
        "[ref]: ../../elsewhere.md\n"
    )
    assert broken_links(repo / "README.md", repo) == [
        "README.md: ../shared/docs/semantics.md points outside the repository",
        "README.md: docs/gone.md does not exist",
        "README.md: /docs/missing.png does not exist",
        "README.md: ../../elsewhere.md points outside the repository",
    ]


def test_a_link_from_docs_resolves_from_its_own_folder(tmp_path: Path) -> None:
    (tmp_path / "docs" / "schemas").mkdir(parents=True)
    (tmp_path / "docs" / "schemas" / "a.json").write_text("{}")
    (tmp_path / "docs" / "page.md").write_text("[a](schemas/a.json) [up](../README.md) [b](docs/schemas/a.json)\n")
    (tmp_path / "README.md").write_text("")
    assert broken_links(tmp_path / "docs" / "page.md", tmp_path) == ["docs/page.md: docs/schemas/a.json does not exist"]
