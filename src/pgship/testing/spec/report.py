"""Build the Allure report of a specification run: ``python -m pgship.testing.spec.report``.

Runs Allure 3 (npm ``allure``, pinned in package-lock.json) with the project's
``allurerc.json``, then removes the analytics snippet that Allure 3's report
template always includes: the report is the project's documentation, opened
from file:// or a static site, and must not call a third-party tracker.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

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


def generate(
    results_dir: Path,
    output_dir: Path | None = None,
    *,
    project_root: Path | None = None,
    keep_history: bool = True,
) -> Path:
    """Generate the single-file report from ``results_dir``; return the path of its index.html.

    ``keep_history=False`` builds a report that neither reads nor extends the
    local history (for tests, which must not add entries to the trend).
    """
    root = (project_root or Path.cwd()).resolve()
    config = json.loads((root / "allurerc.json").read_text(encoding="utf-8"))
    if output_dir is not None:
        config["output"] = str(output_dir.resolve())
    if not keep_history:
        config.pop("historyPath", None)
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
    index = (root / config["output"]).resolve() / "index.html"
    strip_analytics(index)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="reports/allure-results", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=None, help="default: allurerc.json's output")
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        print(f"no results in {args.results}: run behave first", file=sys.stderr)
        return 1
    index = generate(args.results, args.output)
    print(f"Report: {index}")
    print(f"Open:   file://{index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
