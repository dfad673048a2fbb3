/**
 * The built-in web server: a read-only window on the daemon, on `Deno.serve` (no
 * framework).
 *
 * ```
 *  GET /                    the page (index.html, app.js, style.css, uPlot)
 *  GET /api/v1/reading      the last reading (503 with a reason before the first)
 *  GET /api/v1/status       uptime, version, source, MQTT, counters, last errors
 *  GET /api/v1/events       Server-Sent Events: one per decoded telegram
 *                           (?history=1: first an "history" event with the plot's hour)
 *  GET /metrics             Prometheus text format
 * ```
 *
 * It only reads: GET and HEAD, no request body (413), no CORS headers, and it never shows
 * a key or a password (it knows none: it reads the {@link StatusModel}). A telegram is
 * turned into JSON once and queued to every event stream without waiting for any; slow
 * streams are dropped (see `events.ts`). A listener may answer only some peers: the
 * add-on's ingress listener answers only the Supervisor's proxy.
 *
 * @module
 */

import type { Log } from "../../log.ts";
import type { StatusModel, TelegramEvent } from "../../status.ts";
import { formatListenAddress, type WebListener } from "./address.ts";
import {
  METRICS_CONTENT_TYPE,
  metricsText,
  noReadingJson,
  readingJson,
  statusJson,
} from "./api.ts";
import { type Asset, loadAssets } from "./assets.ts";
import { EventHub, type EventHubOptions, sseEvent } from "./events.ts";
import { PowerHistory } from "./history.ts";
import { DayEnergy } from "./today.ts";

export type { WebListener };

export interface WebServerOptions {
  listeners: readonly WebListener[];
  status: StatusModel;
  log: Log;
  /** The assets folder (tests); default `lib/sinks/http/assets/`. */
  assetsDir?: URL;
  /** Limits of the event streams (tests make them small). */
  events?: EventHubOptions;
}

/** Content-Security-Policy of the page: nothing from anywhere else. */
const CSP = "default-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

const COMMON_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

const SHUTDOWN_WAIT_MS = 2_000;

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body, null, 2) + "\n", {
    status,
    headers: {
      ...COMMON_HEADERS,
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

function errorJson(status: number, error: string, headers: Record<string, string> = {}) {
  return json(status, { error }, headers);
}

/** Why a socket could not be had, in words, with what to do. */
function bindError(l: WebListener, e: unknown): Error {
  const where = `"${formatListenAddress(l.address)}"`;
  let why = (e as Error).message;
  if (e instanceof Deno.errors.AddrInUse) {
    why = "the port is in use (another program, or a second smartmeter): choose another port";
  } else if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
    why = l.address.port < 1024
      ? "ports below 1024 need privileges: choose a port from 1024 up, like 8080"
      : `not permitted: ${why}`;
  } else if (e instanceof Deno.errors.AddrNotAvailable) {
    why = "this machine has no such address: use one of its own addresses, or 0.0.0.0 for all";
  }
  return new Error(`${l.from}: cannot listen on ${where}: ${why}`);
}

/** The web server of one daemon, on one or more sockets. */
export class WebServer {
  /** The URLs it answers on, one per listener (with the port actually bound). */
  readonly urls: string[] = [];
  readonly #servers: Deno.HttpServer<Deno.NetAddr>[] = [];
  readonly #status: StatusModel;
  readonly #log: Log;
  readonly #assets: Map<string, Asset>;
  readonly #hub: EventHub;
  readonly #history = new PowerHistory();
  readonly #today = new DayEnergy();
  readonly #unsubscribe: () => void;
  #stopped = false;

  private constructor(opts: WebServerOptions, assets: Map<string, Asset>) {
    this.#status = opts.status;
    this.#log = opts.log;
    this.#assets = assets;
    this.#hub = new EventHub({ log: (m) => this.#log.debug(m), ...opts.events });
    this.#unsubscribe = this.#status.subscribe((e) => this.#onTelegram(e));
  }

  /**
   * Opens every listener; an Error (naming the listener's config key) when one cannot be
   * had, with the others closed again.
   */
  static async start(opts: WebServerOptions): Promise<WebServer | Error> {
    let assets: Map<string, Asset>;
    try {
      assets = await loadAssets(opts.assetsDir);
    } catch (e) {
      return e as Error;
    }
    const web = new WebServer(opts, assets);
    for (const l of opts.listeners) {
      try {
        const server = Deno.serve({
          hostname: l.address.host,
          port: l.address.port,
          onListen: () => {},
          onError: (e) => {
            web.#log.warning(`Request failed: ${(e as Error).message}`);
            return errorJson(500, "Internal error");
          },
        }, (req, info) => web.#handle(req, info, l));
        web.#servers.push(server);
        const bound = server.addr;
        const host = bound.hostname.includes(":") ? `[${bound.hostname}]` : bound.hostname;
        web.urls.push(`http://${host}:${bound.port}/`);
        web.#log.info(
          l.allow === null
            ? `Web page on http://${host}:${bound.port}/`
            : `Web page for Home Assistant's ingress on port ${bound.port} (answering only ${
              l.allow.join(", ")
            })`,
        );
      } catch (e) {
        await web.stop();
        return bindError(l, e);
      }
    }
    return web;
  }

  /** Open event streams. */
  get eventClients(): number {
    return this.#hub.size;
  }

  /** Closes the event streams, then the sockets. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#unsubscribe();
    this.#hub.close();
    await Promise.all(this.#servers.map(async (s) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, SHUTDOWN_WAIT_MS);
      });
      await Promise.race([s.shutdown(), timeout]);
      clearTimeout(timer);
    }));
  }

  #onTelegram(e: TelegramEvent): void {
    const v = e.reading.values;
    this.#history.push(e.receivedMs / 1000, v.power_import_w, v.power_export_w);
    this.#today.update(e.receivedMs, v.energy_import_wh, v.energy_export_wh);
    if (this.#hub.size > 0) {
      const body = JSON.stringify(readingJson(e, this.#today.get()));
      this.#hub.broadcast(sseEvent(body, { id: e.seq }));
    }
  }

  #handle(req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>, l: WebListener): Response {
    if (l.allow !== null && !l.allow.includes(info.remoteAddr.hostname)) {
      return errorJson(403, "Forbidden: this port answers only Home Assistant's ingress proxy");
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return errorJson(405, `Method ${req.method} not allowed: this server only reads`, {
        allow: "GET, HEAD",
      });
    }
    const length = req.headers.get("content-length");
    if ((length !== null && length !== "0") || req.headers.has("transfer-encoding")) {
      return errorJson(413, "Request bodies are refused: this server only reads", {
        connection: "close",
      });
    }
    const url = new URL(req.url);
    switch (url.pathname) {
      case "/api/v1/reading":
        return this.#reading();
      case "/api/v1/status":
        return json(200, statusJson(this.#status, this.#extras()));
      case "/api/v1/events":
        return this.#events(url);
      case "/metrics":
        return new Response(metricsText(this.#status, this.#extras()), {
          headers: {
            ...COMMON_HEADERS,
            "content-type": METRICS_CONTENT_TYPE,
            "cache-control": "no-store",
          },
        });
    }
    const asset = this.#assets.get(url.pathname === "/index.html" ? "/" : url.pathname);
    if (asset === undefined) return errorJson(404, `Not found: ${url.pathname}`);
    const headers: Record<string, string> = {
      ...COMMON_HEADERS,
      "content-type": asset.type,
      "cache-control": "no-cache",
      etag: asset.etag,
    };
    if (asset.type.startsWith("text/html")) headers["content-security-policy"] = CSP;
    if (asset.gzip !== null) headers["vary"] = "accept-encoding";
    if (req.headers.get("if-none-match") === asset.etag) {
      return new Response(null, { status: 304, headers });
    }
    if (asset.gzip !== null && /\bgzip\b/.test(req.headers.get("accept-encoding") ?? "")) {
      return new Response(asset.gzip, { headers: { ...headers, "content-encoding": "gzip" } });
    }
    return new Response(asset.body, { headers });
  }

  #extras() {
    return { today: this.#today.get(), eventClients: this.#hub.size };
  }

  #reading(): Response {
    const last = this.#status.last;
    if (last === null) {
      return json(503, noReadingJson(this.#status), { "retry-after": "5" });
    }
    return json(200, readingJson(last, this.#today.get()));
  }

  #events(url: URL): Response {
    let first = "";
    if (url.searchParams.get("history") === "1") {
      const [t, imp, exp] = this.#history.columns(this.#status.now() / 1000);
      first += sseEvent(JSON.stringify({ t, power_import_w: imp, power_export_w: exp }), {
        event: "history",
      });
    }
    const stream = this.#hub.open(first);
    if (stream === null) {
      return errorJson(503, "Too many event streams are open: try again later", {
        "retry-after": "30",
      });
    }
    return new Response(stream, {
      headers: {
        ...COMMON_HEADERS,
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        // Tells nginx-style proxies (Home Assistant's ingress) not to buffer the stream.
        "x-accel-buffering": "no",
      },
    });
  }
}
