/**
 * The `--http HOST:PORT` option of `run` and `demo`.
 *
 * @module
 */

import type { HttpConfig } from "../config.ts";
import { parseListenAddress } from "../sinks/http/address.ts";
import { UsageError } from "./io.ts";

/** `--http`'s value as the `http` config. @throws {UsageError} when it is no address */
export function httpOption(text: string): HttpConfig {
  const listen = parseListenAddress(text);
  if (typeof listen === "string") throw new UsageError(`--http: ${listen}`);
  return { listen, from: "--http" };
}
