/**
 * Headless Chromium for the browser test and the README's screenshot, through
 * puppeteer-core: Debian's `/usr/bin/chromium`, or the browser `SMARTMETER_CHROMIUM` names
 * (GitHub's runners have Google Chrome instead).
 *
 * @module
 */

import puppeteer, { type Browser } from "puppeteer-core";

/** The browser's executable. */
export const CHROMIUM: string = Deno.env.get("SMARTMETER_CHROMIUM") ?? "/usr/bin/chromium";

/** Why there is no browser to test with, or null when there is one. */
export function chromiumMissing(): string | null {
  try {
    Deno.statSync(CHROMIUM);
    return null;
  } catch {
    return `${CHROMIUM} is missing (apt-get install chromium, or set SMARTMETER_CHROMIUM)`;
  }
}

/** A headless browser with a profile of its own; disposing closes it and removes the profile. */
export interface HeadlessBrowser extends AsyncDisposable {
  readonly browser: Browser;
}

/** Starts the browser: no sandbox (tests run as root), nothing fetched from the internet. */
export async function launchChromium(): Promise<HeadlessBrowser> {
  const profile = await Deno.makeTempDir({ prefix: "smartmeter-chromium-" });
  try {
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--lang=en-US",
        `--user-data-dir=${profile}`,
      ],
    });
    return {
      browser,
      async [Symbol.asyncDispose]() {
        await browser.close().catch(() => {});
        await Deno.remove(profile, { recursive: true }).catch(() => {});
      },
    };
  } catch (e) {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
    throw e;
  }
}
