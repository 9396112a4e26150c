// Opens an Allure 3 report in Debian's headless Chromium the way a reader would:
// expands every group of the tree, then prints what is visible as JSON and saves a screenshot.
// Usage: node tests/report/report_probe.mjs REPORT_INDEX_HTML SCREENSHOT_PNG
// playwright-core drives the system browser (/usr/bin/chromium); it downloads nothing.
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const [reportPath, screenshotPath] = process.argv.slice(2);
if (!reportPath || !screenshotPath) {
  console.error("usage: report_probe.mjs REPORT_INDEX_HTML SCREENSHOT_PNG");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});
try {
  // tall enough that the tree, which renders only rows in view, renders every row
  const page = await browser.newPage({ viewport: { width: 1400, height: 8000 } });
  const consoleErrors = [];
  page.on("console", (msg) => { if (msg.type() === "error") consoleErrors.push(msg.text()); });
  page.on("pageerror", (err) => consoleErrors.push(String(err)));
  // a single-file report must not need the network: refuse every request that is not file: or data:
  const blocked = [];
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("file:") || url.startsWith("data:") || url.startsWith("blob:")) return route.continue();
    blocked.push(url);
    return route.abort();
  });
  await page.goto(pathToFileURL(reportPath).href);
  await page.waitForSelector("[data-testid=tree-section], [data-testid=tree-leaf]", { timeout: 30000 });

  // Expand every closed group (its arrow icon lacks the "--opened" class; Allure opens some groups
  // itself, e.g. those holding failures, and clicking an open group would close it).
  for (let round = 0; round < 1000; round++) {
    const closed = await page.$$eval("[data-testid=tree-section]", (els) => els
      .filter((e) => !/arrow-button-icon--opened/.test(e.querySelector("[data-testid=tree-arrow] svg")?.getAttribute("class") ?? ""))
      .map((e) => e.getAttribute("data-tree-node-id")));
    if (closed.length === 0) break;
    await page.click(`[data-tree-node-id="${closed[0]}"] [data-testid=tree-section-title]`);
    await page.waitForTimeout(100);
  }

  const text = (sel) => page.$$eval(sel, (els) => els.map((e) => e.innerText.trim()));
  const counter = async (sel) => {
    const found = await page.$$eval(`${sel} [data-testid=counter]`, (els) => els.map((e) => e.innerText.trim()));
    return found.length ? Number(found[0]) : 0;
  };
  const leaves = await page.$$eval("[data-testid=tree-leaf]", (els) => els.map((e) => ({
    title: e.querySelector("[data-testid=tree-leaf-title]")?.innerText.trim() ?? "",
    status: (e.querySelector("[data-testid^=tree-leaf-status-]")?.getAttribute("data-testid") ?? "").replace("tree-leaf-status-", ""),
  })));
  // the tree scrolls inside its own container: grow the window so the screenshot shows all of it
  const height = await page.evaluate(() => Math.max(document.body.scrollHeight, ...[...document.querySelectorAll("[data-tree-scroll-container]")].map((el) => el.scrollHeight)));
  await page.setViewportSize({ width: 1400, height: Math.min(Math.max(height + 40, 1000), 8000) });
  await page.evaluate(() => {
    window.scrollTo(0, 0);
    document.querySelectorAll("[data-tree-scroll-container]").forEach((el) => { el.scrollTop = 0; });
  });
  await page.waitForTimeout(200);
  await page.screenshot({ path: screenshotPath, fullPage: true });
  console.log(JSON.stringify({
    title: (await text("[data-testid=report-title]"))[0] ?? "",
    sections: await text("[data-testid=tree-section-title]"),
    leaves,
    total: await counter("[data-testid=tab-all]"),
    passed: await counter("[data-testid=tab-passed]"),
    failed: await counter("[data-testid=tab-failed]"),
    broken: await counter("[data-testid=tab-broken]"),
    metadata: Object.fromEntries(await page.$$eval("[data-testid=metadata-item]", (els) => els.map((e) => [
      e.querySelector("[data-testid=metadata-item-key]")?.innerText.trim(),
      e.querySelector("[data-testid=metadata-item-value]")?.innerText.trim(),
    ]))),
    blockedRequests: blocked,
    consoleErrors,
  }, null, 2));
} finally {
  await browser.close();
}
