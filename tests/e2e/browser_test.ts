/**
 * The web page in a real browser: Debian's Chromium, headless, driven by puppeteer-core.
 * `smartmeter demo --http` runs as a process (simulated meter → pseudo-terminal → the whole
 * pipeline → web server); the page must load without a console error, show the simulated
 * meter's values, grow its plot as telegrams arrive, fit a phone's width, switch to dark,
 * and work below a path prefix as Home Assistant's ingress serves it.
 *
 * Without /usr/bin/chromium (`apt-get install chromium`) the tests are skipped, and say so.
 */

import { equal, match, notEqual, ok as assert } from "node:assert/strict";
import type { Page } from "puppeteer-core";
import { chromiumMissing, launchChromium } from "./chromium.ts";
import { Smartmeter, waitUntil } from "./process.ts";
import { hasPseudoTerminals } from "../pty_support.ts";

// The page's globals, for the functions that run inside the browser (the DOM library's
// types would clash with Deno's in the rest of the test run).
// deno-lint-ignore no-explicit-any
declare const document: any;
// deno-lint-ignore no-explicit-any
declare function getComputedStyle(element: unknown): any;

const noBrowser = chromiumMissing();
if (noBrowser !== null) console.log(`browser_test.ts: ${noBrowser}: browser tests skipped`);

const hasPty = hasPseudoTerminals("browser_test.ts");

const PHONE = { width: 390, height: 844, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const watts = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const volts = new Intl.NumberFormat("en-US", {
  minimumFractionDigits: 1,
  maximumFractionDigits: 1,
});
const kwh = new Intl.NumberFormat("en-US", {
  minimumFractionDigits: 3,
  maximumFractionDigits: 3,
});

interface Reading {
  frame_counter: number;
  meter_id: string;
  layout: string;
  security: string;
  values: Record<string, number>;
}

/** Follows the daemon's event stream from the test's side, to know what was sent. */
function followEvents(url: string, signal: AbortSignal): Map<number, Reading> {
  const seen = new Map<number, Reading>();
  (async () => {
    const res = await fetch(`${url}api/v1/events`, { signal });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const data = /^data: (.*)$/m.exec(buffer.slice(0, end));
        if (data) {
          const r = JSON.parse(data[1]!) as Reading;
          seen.set(r.frame_counter, r);
        }
        buffer = buffer.slice(end + 2);
      }
    }
  })().catch(() => {});
  return seen;
}

/** Everything that would show in the browser's console as a problem. */
function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warn") {
      problems.push(`console ${m.type()}: ${m.text()}`);
    }
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e}`));
  page.on("requestfailed", (r) => {
    // The event stream is cut when the page goes away; that is not a failure.
    if (!r.url().includes("api/v1/events")) {
      problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
    }
  });
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  return problems;
}

/** One consistent look at the page (taken in one task of the page's event loop). */
function snapshot(page: Page) {
  return page.evaluate(() => {
    const text = (id: string) => document.getElementById(id)?.textContent ?? "";
    return {
      counter: Number(text("m-frame-counter")),
      meterId: text("m-meter-id"),
      layout: text("m-layout"),
      security: text("m-security"),
      powerImport: text("power-import"),
      energyImport: text("energy-import"),
      l1: document.querySelector("#phase-l1 .voltage em")?.textContent ?? "",
      phases: document.querySelectorAll("#phases .phase").length,
      points: Number(document.getElementById("plot")?.dataset.points ?? "0"),
      live: document.getElementById("live")?.textContent ?? "",
      decoded: text("d-decoded"),
      mqtt: text("d-mqtt"),
    };
  });
}

async function withDemo(body: (url: string, events: Map<number, Reading>) => Promise<void>) {
  const demo = Smartmeter.spawn([
    "demo",
    "--count",
    "0",
    "--interval",
    "0.5",
    "--http",
    "127.0.0.1:0",
  ]);
  const stop = new AbortController();
  try {
    const line = await demo.waitFor(/^Web page: open http:\/\/127\.0\.0\.1:\d+\/ in a browser$/m);
    const url = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(line)![1]!;
    const events = followEvents(url, stop.signal);
    await body(url, events);
  } finally {
    stop.abort();
    await demo.stop();
  }
}

const browserTest = {
  ignore: noBrowser !== null || !hasPty,
  sanitizeOps: false,
  sanitizeResources: false,
};

Deno.test({
  name: "the page shows the simulated meter, grows its plot, and fits a phone, without errors",
  ...browserTest,
  fn: () =>
    withDemo(async (url, events) => {
      await using chromium = await launchChromium();
      const page = await chromium.browser.newPage();
      const problems = watchProblems(page);
      await page.setViewport({ width: 1100, height: 900 });
      await page.goto(url, { waitUntil: "load" });
      await page.waitForFunction(() => document.getElementById("live")?.textContent === "live");
      await page.waitForFunction(() =>
        Number(document.getElementById("m-frame-counter")?.textContent) > 0
      );

      // The values on the page are those of the telegram it names.
      const s = await snapshot(page);
      await waitUntil(() => events.has(s.counter), `event ${s.counter} seen by the test`);
      const r = events.get(s.counter)!;
      equal(s.meterId, r.meter_id);
      equal(s.layout, "burgenland");
      equal(s.security, "encrypted+authenticated");
      equal(s.powerImport, `${watts.format(r.values.power_import_w!)} W`);
      equal(s.energyImport, `${kwh.format(r.values.energy_import_wh! / 1000)} kWh`);
      equal(s.l1, `${volts.format(r.values.voltage_l1_v!)} V`);
      equal(s.phases, 3, "the three phases the meter sends");
      equal(s.mqtt, "off");

      // The plot gains a point with each telegram.
      const before = s.points;
      assert(before >= 1, "the plot has the points so far");
      await page.waitForFunction(
        (n) => Number(document.getElementById("plot")?.dataset.points) >= n + 2,
        { timeout: 10_000 },
        before,
      );
      const after = await snapshot(page);
      assert(after.counter > s.counter, "newer telegrams are shown");
      const canvas = await page.$eval("#plot canvas", (c) =>
        (c as unknown as { width: number }).width);
      assert(canvas > 300, "the plot is drawn");

      // A phone: no sideways scrolling, the plot as wide as the screen allows.
      await page.setViewport(PHONE);
      await page.waitForFunction(
        (w) =>
          document.querySelector("#plot canvas").clientWidth <= w,
        {},
        PHONE.width,
      );
      const phone = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        plot: document.getElementById("plot")!.getBoundingClientRect().width,
        big: getComputedStyle(document.getElementById("power-import")!).fontSize,
      }));
      assert(phone.scroll <= PHONE.width, `the page is ${phone.scroll} px wide on a phone`);
      assert(phone.plot > 250, `the plot is ${phone.plot} px wide on a phone`);
      equal(phone.big, "32px", "the power is large enough to read");

      // Dark: the colours follow the system setting.
      const light = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "dark" }]);
      const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      notEqual(dark, light);

      equal(problems.join("\n"), "", "no console errors, failed requests or error statuses");
    }),
});

Deno.test({
  name: "the page works below a path prefix, as Home Assistant's ingress serves it",
  ...browserTest,
  fn: () =>
    withDemo(async (url) => {
      // A stand-in for the Supervisor's ingress proxy: it strips the prefix, as the real one
      // does, and passes the response through (the event stream too).
      const prefix = "/api/hassio_ingress/Zm9vYmFyYmF6/";
      const upstream = new AbortController();
      const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
        const u = new URL(req.url);
        if (!u.pathname.startsWith(prefix)) return new Response("not ingress", { status: 404 });
        return fetch(`${url}${u.pathname.slice(prefix.length)}${u.search}`, {
          headers: { "x-ingress-path": prefix.slice(0, -1) },
          signal: upstream.signal,
        });
      });
      // Disposed in reverse: the browser closes before the proxy, whose shutdown waits for
      // the browser's event stream to end.
      await using _proxy = {
        async [Symbol.asyncDispose]() {
          upstream.abort();
          await proxy.shutdown();
        },
      };
      await using chromium = await launchChromium();
      const page = await chromium.browser.newPage();
      const problems = watchProblems(page);
      await page.goto(`http://127.0.0.1:${proxy.addr.port}${prefix}`, { waitUntil: "load" });
      await page.waitForFunction(() => document.getElementById("live")?.textContent === "live");
      await page.waitForFunction(() =>
        Number(document.getElementById("plot")?.dataset.points) >= 2
      );
      const s = await snapshot(page);
      match(s.powerImport, /^[\d,]+ W$/);
      match(s.decoded, /^\d+$/);
      equal(problems.join("\n"), "", "every file and endpoint found below the prefix");
    }),
});
