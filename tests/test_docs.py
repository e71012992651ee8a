"""The README and the docs/ pages: every relative link resolves to a file, and every #anchor to a heading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target "title"), not images
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def github_anchor(heading: str) -> str:
    """GitHub's heading id: lower case, markup and punctuation dropped (hyphens and underscores kept), spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = github_anchor(match.group(1))
            found.add(slug if slug not in counts else f"{slug}-{counts[slug]}")
            counts[slug] = counts.get(slug, 0) + 1
    return found


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))


def test_the_check_sees_the_pages_and_their_links():
    assert len(PAGES) >= 10 and sum(len(links(p)) for p in PAGES) >= 20
    assert github_anchor("The local server: `llama-cpp-python` or llama-server") == "the-local-server-llama-cpp-python-or-llama-server"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path):
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.relative_to(REPO)}: link {target!r}: {path} does not exist"
        assert REPO in file.parents or file == REPO, f"{page.relative_to(REPO)}: link {target!r} leaves the repository"
        if anchor:
            assert file.suffix == ".md", f"{page.relative_to(REPO)}: link {target!r}: an anchor into a non-Markdown file"
            assert anchor in anchors(file), f"{page.relative_to(REPO)}: link {target!r}: no heading #{anchor} in {file.name}"
