/**
 * Takes the README's picture of the web page (docs/web-page.png): `smartmeter demo --http`
 * for a while, then headless Chromium (Debian's /usr/bin/chromium) through puppeteer-core.
 *
 * ```sh
 * deno run -A scripts/screenshot.ts [--seconds 40] [--out docs/web-page.png]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { launchChromium } from "../tests/e2e/chromium.ts";
import { sleep, Smartmeter } from "../tests/e2e/process.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "40" },
    out: { type: "string", default: "docs/web-page.png" },
  },
});

const demo = Smartmeter.spawn(["demo", "--count", "0", "--interval", "1", "--http", "127.0.0.1:0"]);
try {
  const line = await demo.waitFor(/^Web page: open (http:\/\/\S+) in a browser$/m);
  const url = /(http:\/\/\S+)/.exec(line)![1]!;
  await sleep(Number(values.seconds) * 1000);
  await using chromium = await launchChromium();
  const page = await chromium.browser.newPage();
  await page.setViewport({ width: 1000, height: 900 });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction("document.getElementById('live').textContent === 'live'");
  await sleep(1500);
  await page.screenshot({ path: values.out, fullPage: true });
  console.log(`${values.out} written`);
} finally {
  await demo.stop();
}
