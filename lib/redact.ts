/**
 * Keeping secrets (the meter keys, the MQTT password) out of logs and error messages.
 *
 * A key can show up in text in many spellings: as configured, as hex in upper or lower
 * case, with spaces or colons between the byte pairs (hex dumps, debug output of frames).
 * {@link redact} replaces all of them by `***`.
 *
 * @module
 */

import type { Config } from "./config.ts";

/** What replaces a secret. */
export const REDACTED = "***";

/** A string secret that reads as hex of at least this many bytes is also matched as bytes. */
const MIN_HEX_BYTES = 4;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A pattern for these bytes as hex: any case, optional spaces/colons between byte pairs. */
function hexPattern(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("[\\s:-]?");
}

/** The bytes a string secret denotes when it is written as hex (a key), else null. */
function hexBytes(s: string): Uint8Array | null {
  const digits = s.trim().replace(/^0x/i, "").replace(/[\s:-]/g, "");
  if (digits.length < 2 * MIN_HEX_BYTES || digits.length % 2 !== 0) return null;
  if (/[^0-9a-fA-F]/.test(digits)) return null;
  return Uint8Array.from(
    { length: digits.length / 2 },
    (_, i) => parseInt(digits.slice(2 * i, 2 * i + 2), 16),
  );
}

/**
 * Replaces every occurrence of each secret in `text` by `***`.
 *
 * - A string secret is matched literally, and, when it is itself hex (a key), also as the
 *   bytes it denotes; a longer string secret is matched as the hex of its UTF-8 bytes too.
 * - A byte secret is matched as hex in any case, with or without spaces, colons or dashes
 *   between the byte pairs.
 *
 * Empty, null and undefined secrets are skipped.
 */
export function redact(
  text: string,
  secrets: readonly (string | Uint8Array | null | undefined)[],
): string {
  const patterns: string[] = [];
  for (const secret of secrets) {
    if (secret === null || secret === undefined || secret.length === 0) continue;
    if (typeof secret === "string") {
      patterns.push(escapeRegExp(secret));
      const asHex = hexBytes(secret);
      if (asHex !== null) patterns.push(hexPattern(asHex));
      const utf8 = new TextEncoder().encode(secret);
      if (utf8.length >= MIN_HEX_BYTES) patterns.push(hexPattern(utf8));
    } else {
      patterns.push(hexPattern(secret));
    }
  }
  if (patterns.length === 0) return text;
  // Longest first, so a secret that contains another is replaced whole.
  patterns.sort((a, b) => b.length - a.length);
  return text.replace(new RegExp(patterns.join("|"), "gi"), REDACTED);
}

/**
 * The config as a plain object for logging, with the keys and the password replaced by
 * `***` when set (null stays null; an empty password stays "").
 */
export function redactConfig(c: Config): Record<string, unknown> {
  const hide = <T>(v: T | null): T | string | null =>
    v === null || (typeof v === "string" && v === "") ? v : REDACTED;
  return {
    logging: c.logging,
    meterType: c.meterType,
    source: { ...c.source },
    key: hide(c.key),
    authKey: hide(c.authKey),
    mqtt: { ...c.mqtt, password: hide(c.mqtt.password) },
    obsolete: [...c.obsolete],
    unknown: [...c.unknown],
    warnings: c.warnings.map((w) => ({ ...w })),
    secretSources: { ...c.secretSources },
  };
}
