"""Every relative link of the project's Markdown files leads to a file and heading that exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: ``[text](target)`` and ``![alt](target)``, the target up to the first space or bracket.
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^(```|~~~)')
#: Inline code, where a ``[text](target)`` is not a link.
INLINE_CODE = re.compile(r'`[^`]*`')


def markdown_files() -> list[Path]:
    """Return the project's own Markdown files (not those of hidden folders, runs or builds)."""
    skipped = {'out', 'runs', 'build', 'node_modules'}
    return sorted(path for path in ROOT.rglob('*.md')
                  if not any(part in skipped or part.startswith('.')
                             for part in path.relative_to(ROOT).parts[:-1]))


def prose_lines(text: str) -> list[str]:
    """Return the lines of ``text`` outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def heading_anchor(title: str) -> str:
    """Return GitHub's anchor of a heading: lower case, punctuation dropped, spaces hyphens."""
    title = re.sub(r'<[^>]+>', '', title.strip()).lower()
    return re.sub(r'[^\w\- ]', '', title).replace(' ', '-')


def anchors(path: Path) -> set[str]:
    """Return the anchors of ``path``'s headings, numbered as GitHub numbers repeats."""
    found: set[str] = set()
    for line in prose_lines(path.read_text(encoding='utf-8')):
        match = re.match(r'#{1,6}\s+(.*)', line)
        if match:
            anchor = heading_anchor(match.group(1))
            count = 0
            while (anchor if not count else f'{anchor}-{count}') in found:
                count += 1
            found.add(anchor if not count else f'{anchor}-{count}')
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Return ``path``'s relative links whose file or heading does not exist, as lines."""
    broken = []
    for line in prose_lines(path.read_text(encoding='utf-8')):
        for target in LINK.findall(INLINE_CODE.sub('', line)):
            if re.match(r'[a-z]+:', target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition('#')
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f'{path.relative_to(root)}: {target} (no such file)')
            elif anchor and linked.suffix == '.md' and anchor not in anchors(linked):
                broken.append(f'{path.relative_to(root)}: {target} (no such heading)')
    return broken


def test_heading_anchor_follows_github():
    assert heading_anchor('Refining by matching (`refine_radius`)') == \
        'refining-by-matching-refine_radius'
    assert heading_anchor('Command line: `stereo-depth`') == 'command-line-stereo-depth'
    assert heading_anchor('On the generator\'s own scenes (0-64 px)') == \
        'on-the-generators-own-scenes-0-64-px'


def test_broken_links_found(tmp_path):
    (tmp_path / 'other.md').write_text('# A heading\n\n## A heading\n')
    page = tmp_path / 'page.md'
    page.write_text('[ok](other.md#a-heading) [twice](other.md#a-heading-1) [web](https://x.y)\n'
                    '[gone](missing.md) [no heading](other.md#nothing) [self](#title)\n'
                    '`[in inline code](ignored.md)`\n'
                    '```\n[in code](ignored.md)\n```\n# Title\n')
    assert broken_links(page, tmp_path) == ['page.md: missing.md (no such file)',
                                            'page.md: other.md#nothing (no such heading)']


@pytest.mark.parametrize('path', markdown_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_links_resolve(path):
    assert broken_links(path) == []
