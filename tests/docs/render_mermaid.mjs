// Renders every Mermaid diagram given as JSON on stdin with the real mermaid library, in
// Debian's headless Chromium (as GitHub renders them in the browser); prints a JSON list of
// {index, ok, error}. Usage: node tests/docs/render_mermaid.mjs < diagrams.json
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const diagrams = JSON.parse(readFileSync(0, "utf8"));
const library = readFileSync(require.resolve("mermaid/dist/mermaid.min.js"), "utf8");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const page = await browser.newPage();
  await page.setContent("<!doctype html><html><body></body></html>");
  await page.addScriptTag({ content: library });
  const results = await page.evaluate(async (sources) => {
    window.mermaid.initialize({ startOnLoad: false });
    const out = [];
    for (const [index, source] of sources.entries()) {
      try {
        const { svg } = await window.mermaid.render(`diagram${index}`, source);
        out.push({ index, ok: svg.includes("<svg"), error: null });
      } catch (error) {
        out.push({ index, ok: false, error: String(error?.message ?? error) });
      }
    }
    return out;
  }, diagrams);
  console.log(JSON.stringify(results));
} finally {
  await browser.close();
}
