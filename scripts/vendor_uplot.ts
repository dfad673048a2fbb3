/**
 * Copies uPlot's browser build from the npm package pinned in deno.json (`imports.uplot`)
 * into lib/sinks/http/assets/, where the web server serves it and `deno compile
 * --include` embeds it. Run after changing the pinned version:
 *
 * ```sh
 * deno task vendor:uplot
 * ```
 *
 * tests/http_test.ts checks that the copies are byte for byte the pinned package.
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url);
const ASSETS = new URL("lib/sinks/http/assets/", ROOT);
const FILES = [
  ["dist/uPlot.iife.min.js", "uPlot.iife.min.js"],
  ["dist/uPlot.min.css", "uPlot.min.css"],
  ["LICENSE", "uPlot.LICENSE"],
] as const;

const denoJson = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
const spec = /^npm:uplot@(\d+\.\d+\.\d+)$/.exec(denoJson.imports?.uplot ?? "");
if (spec === null) {
  console.error('deno.json must pin uplot to one version, like "uplot": "npm:uplot@1.6.32"');
  Deno.exit(1);
}
const version = spec[1]!;
const info = await new Deno.Command(Deno.execPath(), {
  args: ["info", "--json", `npm:uplot@${version}`],
  stdout: "piped",
}).output();
const dir = JSON.parse(new TextDecoder().decode(info.stdout)).npmPackages?.[`uplot@${version}`]
  ?.localPath as string | undefined;
if (!info.success || dir === undefined) {
  console.error(`Cannot find uplot@${version} in Deno's npm cache`);
  Deno.exit(1);
}
for (const [from, to] of FILES) {
  await Deno.copyFile(`${dir}/${from}`, new URL(to, ASSETS));
  console.log(`uplot@${version}/${from} → lib/sinks/http/assets/${to}`);
}
