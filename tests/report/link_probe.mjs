// Follows the links between the report and the guide the way a reader does, in Debian's headless Chromium:
// opens the report, opens a scenario, clicks its link to the guide, then clicks the guide's "Proved by"
// link back to the scenario. Prints what it saw at each stop as JSON and saves a screenshot of each.
// Usage: node tests/report/link_probe.mjs REPORT_INDEX_HTML "SCENARIO NAME" SCREENSHOT_PREFIX
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const [reportPath, scenario, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
});
const seen = {};
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 4000 } });
  await page.goto(pathToFileURL(reportPath).href);
  await page.waitForSelector("[data-testid=tree-section], [data-testid=tree-leaf]", { timeout: 30000 });
  // open every group until the scenario's leaf is visible
  for (let round = 0; round < 200; round++) {
    const leaf = page.locator("[data-testid=tree-leaf-title]", { hasText: scenario }).first();
    if (await leaf.count()) { await leaf.click(); break; }
    const closed = await page.$$eval("[data-testid=tree-section]", (els) => els
      .filter((e) => !/arrow-button-icon--opened/.test(e.querySelector("[data-testid=tree-arrow] svg")?.getAttribute("class") ?? ""))
      .map((e) => e.getAttribute("data-tree-node-id")));
    if (!closed.length) break;
    await page.click(`[data-tree-node-id="${closed[0]}"] [data-testid=tree-section-title]`);
    await page.waitForTimeout(100);
  }
  await page.waitForTimeout(500);
  seen.scenarioUrl = page.url();
  seen.scenarioTitle = (await page.$$eval("[data-testid=test-result-info-title]", (els) => els.map((e) => e.innerText.trim())))[0] ?? "";
  // the scenario's links (Allure draws a link it cannot follow as a <span>, without href)
  seen.links = await page.$$eval("a[href*='guide']", (els) => els.map((e) => ({ text: e.innerText.trim(), href: e.href })));
  await page.screenshot({ path: `${shots}-scenario.png` });
  const link = page.locator("a[href*='guide']").first();
  if (await link.count()) {
    const [guidePage] = await Promise.all([
      page.context().waitForEvent("page", { timeout: 5000 }).catch(() => null),
      link.click(),
    ]);
    const guide = guidePage ?? page;
    await guide.waitForLoadState();
    seen.guideUrl = guide.url();
    const id = decodeURIComponent(new URL(guide.url()).hash.slice(1));
    seen.guideHeading = await guide.evaluate((id) => document.getElementById(id)?.innerText ?? null, id);
    await guide.screenshot({ path: `${shots}-guide.png` });
    // the guide renders `code` in a scenario's name as <code>, so its text has no backticks
    const back = guide.locator("a", { hasText: scenario.replaceAll("`", "") }).first();
    seen.backHref = (await back.count()) ? await back.evaluate((a) => a.href) : null;
    if (seen.backHref) {
      await back.click();
      await guide.waitForSelector("[data-testid=test-result-info-title]", { timeout: 30000 });
      await guide.waitForTimeout(500);
      seen.backUrl = guide.url();
      seen.backTitle = (await guide.$$eval("[data-testid=test-result-info-title]", (els) => els.map((e) => e.innerText.trim())))[0] ?? "";
      await guide.screenshot({ path: `${shots}-back.png` });
    }
  }
  console.log(JSON.stringify(seen, null, 2));
} finally {
  await browser.close();
}
