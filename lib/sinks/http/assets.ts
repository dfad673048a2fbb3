/**
 * The page's static files (`lib/sinks/http/assets/`), read once at start and served from
 * memory. `deno compile --include lib/sinks/http/assets` embeds the folder in the binary,
 * where it is read through the same `import.meta.url` path as under `deno run`.
 *
 * Only the files named in {@link ASSETS} are served: a request can never name a path.
 *
 * @module
 */

/** URL path → file name in the assets folder, and its content type. */
export const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
  "/icon.svg": { file: "icon.svg", type: "image/svg+xml" },
  "/uPlot.iife.min.js": { file: "uPlot.iife.min.js", type: "text/javascript; charset=utf-8" },
  "/uPlot.min.css": { file: "uPlot.min.css", type: "text/css; charset=utf-8" },
};

/** The folder the assets are read from. */
export const ASSETS_DIR: URL = new URL("./assets/", import.meta.url);

/** One file, ready to send. */
export interface Asset {
  readonly body: Uint8Array<ArrayBuffer>;
  readonly type: string;
  /** Strong validator: a hash of the content. */
  readonly etag: string;
  /** The same, gzip-compressed once at start (null when that saves nothing). */
  readonly gzip: Uint8Array<ArrayBuffer> | null;
}

async function gzip(body: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer> | null> {
  const packed = new Uint8Array(
    await new Response(
      new Blob([body]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer(),
  );
  return packed.length < body.length * 0.9 ? packed : null;
}

/** Reads every asset. @throws {Error} naming the file that is missing */
export async function loadAssets(dir: URL = ASSETS_DIR): Promise<Map<string, Asset>> {
  const out = new Map<string, Asset>();
  for (const [path, { file, type }] of Object.entries(ASSETS)) {
    let body: Uint8Array<ArrayBuffer>;
    try {
      body = await Deno.readFile(new URL(file, dir));
    } catch (e) {
      throw new Error(
        `Cannot read the web page's file "${file}" in ${dir.pathname}: ${(e as Error).message}`,
      );
    }
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
    const etag = `"${
      Array.from(hash.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("")
    }"`;
    out.set(path, { body, type, etag, gzip: await gzip(body) });
  }
  return out;
}
