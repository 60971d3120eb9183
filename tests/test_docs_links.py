"""Links between the project's Markdown pages lead somewhere: the file exists and the heading is there.

A page that links to ``results.md#some-heading`` after that heading was renamed sends a reader to the top
of a 400-line page; GitHub says nothing. Every relative link of every tracked ``.md`` file (outside fenced
code) is checked: the target file exists, and a ``#fragment`` matches one of the target page's headings
as GitHub turns headings into anchors.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from test_repo_paths import REPO, tracked_files

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (word characters, hyphens and spaces
    kept), spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    """The anchors of a page's headings (repeated headings get ``-1``, ``-2``... as on GitHub); each page
    is read once however many links lead to it."""
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return frozenset(out)


def broken_links(page: Path) -> list[str]:
    """``target (why)`` for each relative link of ``page`` that leads nowhere."""
    bad = []
    for m in LINK.finditer(FENCE.sub("", page.read_text(encoding="utf-8"))):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        name, _, fragment = target.partition("#")
        dest = (page.parent / name).resolve() if name else page
        if not dest.exists():
            bad.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            bad.append(f"{target} (no such heading)")
    return bad


def test_slugs_follow_github() -> None:
    assert slug("The current weights: the second expression run (issue 24)") == \
        "the-current-weights-the-second-expression-run-issue-24"
    assert slug("3D: pose, light, frontalization and reconstruction") == \
        "3d-pose-light-frontalization-and-reconstruction"
    assert slug("Δexp and `Z_id`") == "δexp-and-z_id"


def test_a_renamed_heading_is_found(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\n## Old name\n\n```md\n## Not a heading\n```\n",
                                   encoding="utf-8")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#old-name) [gone](a.md#new-name) [code](a.md#not-a-heading) "
                    "[file](c.md) [web](https://example.org/x.md#y)\n", encoding="utf-8")
    assert broken_links(page) == ["a.md#new-name (no such heading)", "a.md#not-a-heading (no such heading)",
                                  "c.md (no such file)"]


def test_every_link_between_pages_leads_somewhere() -> None:
    # templates are checked as the pages rendered from them (benchmarks/templates -> docs/)
    pages = [p for p in tracked_files() if p.suffix == ".md" and p.is_file() and p.parent.name != "templates"]
    assert len(pages) > 5
    bad = [f"{p.relative_to(REPO)}: {b}" for p in pages for b in broken_links(p)]
    assert not bad, "\n".join(bad)
