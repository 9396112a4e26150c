"""Build the Allure report of a specification run: ``python -m pgship.testing.spec.report``.

Runs Allure 3 (npm ``allure``, pinned in package-lock.json) with the project's
``allurerc.json``, then removes the analytics snippet that Allure 3's report
template always includes: the report is the project's documentation, opened
from file:// or a static site, and must not call a third-party tracker.

Beside the report's ``index.html`` it writes ``guide.html``: the deployment
guide (docs/DEPLOYMENT.md) rendered, with GitHub's heading anchors, and each
scenario named on a "Proved by:" line linking to that scenario in the report
(``index.html#<id>``; the ids are stable, see
:func:`pgship.testing.spec.allure_formatter.report_anchor`). Each scenario
links to its section of this page (``make spec`` sets the link pattern; the
report is taught to draw ``file://`` links, :func:`allow_file_links`), so a
reader goes from a guarantee to its proof and back.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pgship.testing.spec.allure_formatter import GUIDE_PAGE, report_anchor

GUIDE = Path("docs") / "DEPLOYMENT.md"

_ANALYTICS = re.compile(
    r"\s*<script async src=\"https://www\.googletagmanager\.com/gtag/js[^\"]*\"></script>"
    r"\s*<script>\s*window\.dataLayer = window\.dataLayer \|\| \[\];.*?</script>",
    re.S,
)


def strip_analytics(index_html: Path) -> bool:
    """Remove the tracker from a generated report; return whether it was there."""
    html = index_html.read_text(encoding="utf-8")
    cleaned, count = _ANALYTICS.subn("", html)
    if count:
        index_html.write_text(cleaned, encoding="utf-8")
    if "googletagmanager" in cleaned:
        raise RuntimeError(f"{index_html}: the analytics snippet changed shape; update report.py")
    return bool(count)


_SCRIPT = re.compile(r'src="data:text/javascript;base64,(?P<code>[A-Za-z0-9+/=]+)"')
_LINK_SCHEMES = '["http:","https:","mailto:","tel:"]'


def allow_file_links(index_html: Path) -> int:
    """Let the report draw ``file://`` links (to the guide beside it) as links; return how many places.

    Allure 3's report draws a test's link as a link only for http, https, mailto and tel URLs, so a
    report opened from disk cannot link to a page beside it. The single-file report embeds its app as a
    base64 script; this adds ``file:`` to that list of schemes there.
    """
    import base64

    text = index_html.read_text(encoding="utf-8")
    patched = 0

    def patch(match: re.Match[str]) -> str:
        nonlocal patched
        code = base64.b64decode(match["code"]).decode("utf-8")
        if _LINK_SCHEMES not in code:
            return match.group()
        patched += code.count(_LINK_SCHEMES)
        code = code.replace(_LINK_SCHEMES, '["http:","https:","mailto:","tel:","file:"]')
        return f'src="data:text/javascript;base64,{base64.b64encode(code.encode("utf-8")).decode("ascii")}"'

    text = _SCRIPT.sub(patch, text)
    if not patched:
        raise RuntimeError(f"{index_html}: Allure's list of link schemes changed shape; update report.py")
    index_html.write_text(text, encoding="utf-8")
    return patched


def generate(
    results_dir: Path,
    output_dir: Path | None = None,
    *,
    project_root: Path | None = None,
    keep_history: bool = True,
    history_path: Path | None = None,
    repository_url: str | None = None,
) -> Path:
    """Generate the single-file report from ``results_dir``; return the path of its index.html.

    ``keep_history=False`` builds a report that neither reads nor extends the
    local history (for tests, which must not add entries to the trend);
    ``history_path`` keeps it elsewhere. ``repository_url`` (e.g.
    ``https://github.com/o/r/blob/SHA``) is where the guide page's links to
    repository files go; by default they are ``file://`` paths in the checkout.
    """
    root = (project_root or Path.cwd()).resolve()
    config = json.loads((root / "allurerc.json").read_text(encoding="utf-8"))
    if output_dir is not None:
        config["output"] = str(output_dir.resolve())
    if not keep_history:
        config.pop("historyPath", None)
    elif history_path is not None:
        history_path.parent.mkdir(parents=True, exist_ok=True)
        config["historyPath"] = str(history_path.resolve())
    allure = root / "node_modules" / ".bin" / "allure"
    if not allure.exists():
        raise FileNotFoundError(f"{allure} is missing: run `npm ci` in {root}")
    with tempfile.TemporaryDirectory(prefix="pgship-allurerc-") as scratch:
        config_path = Path(scratch) / "allurerc.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        completed = subprocess.run(
            [str(allure), "generate", str(results_dir.resolve()), "--config", str(config_path)],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
    if completed.returncode != 0:
        raise RuntimeError(
            f"allure generate failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        )
    index: Path = (root / config["output"]).resolve() / "index.html"
    strip_analytics(index)
    allow_file_links(index)
    if (root / GUIDE).is_file():
        write_guide(root / GUIDE, results_dir, index.parent, root=root, repository_url=repository_url)
    return index


# -- the guide beside the report ---------------------------------------------------------
def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def scenario_anchors(results_dir: Path) -> dict[str, str]:
    """Each result's name -> its fragment in the report (``index.html#<fragment>``)."""
    anchors: dict[str, str] = {}
    for path in sorted(results_dir.glob("*-result.json")):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if result.get("name") and result.get("uuid"):
            anchors.setdefault(result["name"], report_anchor(result["uuid"]))
    return anchors


def _anchor_for(name: str, anchors: dict[str, str]) -> str | None:
    if name in anchors:
        return anchors[name]
    rows = sorted(result for result in anchors if result.startswith(f"{name} -- @"))
    if rows:  # an outline: its first example row
        return anchors[rows[0]]
    if "<" in name:  # an outline's name: its first example row ("... two files ... -- @1.1 ...")
        pattern = re.compile(
            "".join(
                ".+?" if part.startswith("<") else re.escape(part) for part in re.split(r"(<[^>]+>)", name)
            )
        )
        for result_name in sorted(anchors):
            if pattern.match(result_name):
                return anchors[result_name]
    return None


def write_guide(
    guide: Path, results_dir: Path, output_dir: Path, *, root: Path, repository_url: str | None = None
) -> Path:
    """Render ``guide`` to ``output_dir/guide.html``, its scenario links pointing into the report."""
    from markdown_it import MarkdownIt

    guide, root = guide.resolve(), root.resolve()
    anchors = scenario_anchors(results_dir)
    markdown = MarkdownIt("commonmark").enable("table")
    tokens = markdown.parse(guide.read_text(encoding="utf-8"))
    title = "Deployment guide"
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            text = tokens[index + 1].content
            token.attrSet("id", slug(text))
            if token.tag == "h1":
                title = text
        if token.type != "inline" or not token.children:
            continue
        children = token.children
        for position, child in enumerate(children):
            if child.type != "link_open":
                continue
            href = str(child.attrGet("href") or "")
            label = _link_text(children[position + 1 :])
            child.attrSet("href", _guide_href(href, label, guide, anchors, root, repository_url))
    body = markdown.renderer.render(tokens, markdown.options, {})
    page = output_dir / GUIDE_PAGE
    page.write_text(_PAGE.format(title=html.escape(title), body=body, report="index.html"), encoding="utf-8")
    return page


def _link_text(tokens: list[Any]) -> str:
    """A link's text as written in Markdown (code spans keep their backticks), up to its end."""
    parts = []
    for token in tokens:
        if token.type == "link_close":
            break
        parts.append(f"`{token.content}`" if token.type == "code_inline" else token.content)
    return "".join(parts)


def _guide_href(
    href: str, label: str, guide: Path, anchors: dict[str, str], root: Path, repository_url: str | None
) -> str:
    if not href or href.startswith(("#", "http://", "https://", "mailto:", "file:")):
        return href
    path, hash_sign, fragment = href.partition("#")
    if path.endswith(".feature"):
        anchor = _anchor_for(label.replace("\\", ""), anchors)
        if anchor is not None:
            return f"index.html#{anchor}"
    target = Path(os.path.normpath(guide.parent / path))
    if path.endswith(".md") and target == guide:
        return f"#{fragment}" if fragment else "#"
    try:
        relative = target.relative_to(root).as_posix()
    except ValueError:
        return href
    if repository_url:
        return f"{repository_url.rstrip('/')}/{relative}{hash_sign}{fragment}"
    return target.as_uri() + hash_sign + fragment


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 16px/1.55 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; }}
pre {{ background: #f6f8fa; padding: .8rem; overflow: auto; }} code {{ font-size: 90%; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #d0d7de; padding: .3rem .6rem; }}
a {{ color: #0969da; }} nav {{ margin-bottom: 1rem; }}
</style></head>
<body><nav><a href="{report}">&larr; The specification report</a></nav>
{body}
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="reports/allure-results", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=None, help="default: allurerc.json's output")
    parser.add_argument(
        "--repository-url",
        default=None,
        help="where the guide page links repository files (CI: https://github.com/OWNER/REPO/blob/SHA); "
        "default: file:// paths in this checkout",
    )
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        print(f"no results in {args.results}: run behave first", file=sys.stderr)
        return 1
    index = generate(args.results, args.output, repository_url=args.repository_url)
    print(f"Report: {index}")
    print(f"Open:   file://{index}")
    if (index.parent / GUIDE_PAGE).is_file():
        print(f"Guide:  file://{index.parent / GUIDE_PAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
