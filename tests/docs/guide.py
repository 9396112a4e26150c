"""Reading the guide's Markdown: headings and their anchors, links, and the shell examples.

Kept apart from the tests so the rules are small, named and reusable: GitHub's
heading slugs, the example annotations (``<!-- example: skip (why) -->``,
``<!-- example: exit N -->``), and the output block that follows an example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
_ANNOTATION = re.compile(r"<!--\s*example:\s*(?P<kind>skip|exit)\s*(?P<arg>[^>]*?)\s*-->")
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]+)\]\((?P<target>[^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@dataclass
class Heading:
    level: int
    title: str
    line: int

    @property
    def anchor(self) -> str:
        return slug(self.title)


@dataclass
class Example:
    """A ```bash block: what to run, what exit code to expect, and the output shown after it."""

    code: str
    line: int
    skip: str | None = None
    expected_exit: int = 0
    shown_output: str | None = None
    section: str = ""


@dataclass
class Document:
    path: Path
    headings: list[Heading] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    links: list[tuple[int, str, str]] = field(default_factory=list)  # (line, text, target)

    @property
    def anchors(self) -> set[str]:
        return {h.anchor for h in self.headings}

    def section_text(self, anchor: str) -> str:
        """The Markdown of a heading's section, up to the next heading of the same or a higher level."""
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for index, heading in enumerate(self.headings):
            if heading.anchor == anchor:
                end = len(lines)
                for later in self.headings[index + 1 :]:
                    if later.level <= heading.level:
                        end = later.line - 1
                        break
                return "\n".join(lines[heading.line : end])
        raise KeyError(anchor)


def read(path: Path) -> Document:
    document = Document(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    pending_annotation: tuple[str, str] | None = None
    last_example: Example | None = None
    section = ""
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            indent, lang = fence["indent"], fence["lang"]
            body = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i].lstrip())
                i += 1
            text = "\n".join(body) + "\n"
            if lang == "bash":
                example = Example(text, i - len(body), section=section)
                if pending_annotation:
                    kind, arg = pending_annotation
                    if kind == "skip":
                        example.skip = arg or "not runnable here"
                    else:
                        example.expected_exit = int(arg)
                document.examples.append(example)
                last_example = example
            elif lang == "text" and last_example is not None:
                last_example.shown_output = text
                last_example = None
            else:
                last_example = None
            pending_annotation = None
            i += 1
            continue
        annotation = _ANNOTATION.search(line)
        if annotation:
            pending_annotation = (annotation["kind"], annotation["arg"])
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            document.headings.append(Heading(len(heading[1]), heading[2], i + 1))
            section = slug(heading[2])
            last_example = None
        if line.strip():  # prose between an example and a text block: that block is not its output
            last_example = None
        for match in _LINK.finditer(line):
            document.links.append((i + 1, match["text"], match["target"]))
        i += 1
    return document


def normalise(text: str) -> list[str]:
    """Output lines with numbers and dates blurred, so timings and ports do not matter."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"\d+(\.\d+)?", "#", line.rstrip())
        line = re.sub(r"\s+", " ", line).strip()
        if line:
            out.append(line)
    return out


def shown_lines_missing(shown: str, actual: str) -> list[str]:
    """Lines of the shown output that do not appear, in order, in the actual output.

    ``...`` in a shown line stands for anything (a checksum, an elided statement).
    """
    actual_lines = normalise(actual)
    missing = []
    position = 0
    for line in normalise(shown):
        pattern = re.compile(".*".join(re.escape(part) for part in line.split("...")) + "$")
        match = next((i for i in range(position, len(actual_lines)) if pattern.match(actual_lines[i])), None)
        if match is None:
            missing.append(line)
        else:
            position = match + 1
    return missing
