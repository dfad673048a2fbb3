/**
 * The address the web server listens on: `host:port` as written in `http.listen` and
 * `--http`.
 *
 * ```
 *  127.0.0.1:8080     one IPv4 address          (only this machine)
 *  0.0.0.0:8080       every IPv4 address        (the whole network)
 *  [::1]:8080         an IPv6 address, in brackets
 *  localhost:8080     a host name
 *  :8080              shorthand for 0.0.0.0:8080
 *  127.0.0.1:0        any free port (the log names the one chosen)
 * ```
 *
 * @module
 */

/** Where to listen. */
export interface ListenAddress {
  /** Host name or address, without IPv6 brackets. */
  readonly host: string;
  /** 0..65535; 0 picks a free port. */
  readonly port: number;
}

/**
 * Parses `host:port`.
 * @returns the address, or a message saying what is wrong (for the caller to name its key)
 */
export function parseListenAddress(text: string): ListenAddress | string {
  const t = text.trim();
  const example = "write host:port, like 127.0.0.1:8080 or 0.0.0.0:8080";
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(t)) {
    return `${JSON.stringify(t)} is a URL: ${example} (without http://)`;
  }
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:/\[\]]*)):(\d{1,5})$/.exec(t);
  if (m === null) return `${JSON.stringify(t)} is not an address to listen on: ${example}`;
  const port = Number(m[3]);
  if (port > 65535) return `port ${port} in ${JSON.stringify(t)} is above 65535`;
  const host = m[1] ?? (m[2] === "" ? "0.0.0.0" : m[2]!);
  return { host, port };
}

/** `host:port` again, with brackets around IPv6 addresses. */
export function formatListenAddress(a: ListenAddress): string {
  return `${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`;
}

/** The port the Home Assistant add-on serves its ingress panel on (`ingress_port`). */
export const INGRESS_PORT = 8099;
/** The Supervisor's ingress proxy: the only peer an ingress listener answers. */
export const INGRESS_PROXY = "172.30.32.2";

/** One socket of the web server. */
export interface WebListener {
  readonly address: ListenAddress;
  /** What asked for it, named in errors: "http.listen", "--http", "--ingress". */
  readonly from: string;
  /** Peer addresses answered; null = everyone. */
  readonly allow: readonly string[] | null;
}

/** The sockets to open for the `http` config and the `--ingress` switch; none = no server. */
export function webListeners(
  http: { readonly listen: ListenAddress | null; readonly from: string },
  ingress: boolean,
): WebListener[] {
  const out: WebListener[] = [];
  if (http.listen !== null) out.push({ address: http.listen, from: http.from, allow: null });
  if (ingress) {
    out.push({
      address: { host: "0.0.0.0", port: INGRESS_PORT },
      from: "--ingress",
      allow: [INGRESS_PROXY],
    });
  }
  return out;
}
