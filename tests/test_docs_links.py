"""Every relative link of the Markdown documents points at a file that exists and, with an anchor, at a heading
of it (GitHub's anchors), so that moving a page (docs/benchmarks/ was one 3,200-line file) breaks no link."""
from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def documents() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*.md"], cwd=ROOT, capture_output=True,
                            text=True).stdout.split()
    found = [ROOT / f for f in listed] if listed else list(ROOT.glob("*.md")) + list((ROOT / "docs").rglob("*.md"))
    return sorted(p for p in found if p.is_file() and "results" not in p.parts)


def slug(text: str) -> str:
    text = text.strip().lower().replace("`", "")
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    out, seen, fence = set(), {}, False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"^#{1,6} (.*)$", line)):
            s = slug(m.group(1))
            out.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return out


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    text, fence, bad = doc.read_text(), False, []
    lines = []
    for line in text.splitlines():  # links in code blocks are code
        fence = not fence if line.startswith("```") else fence
        lines.append("" if fence or line.startswith("```") else line)
    for target in LINK.findall("\n".join(lines)):
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            bad.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            bad.append(f"{target}: no such heading")
    assert not bad, f"{doc.relative_to(ROOT)}: " + "; ".join(bad)
