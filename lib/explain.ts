/**
 * `decode --explain`: what each layer of the decoder saw, telegram by telegram, for the bug
 * report about a meter nobody has seen yet. Pure: it is fed the decoder's trace steps
 * (`pipeline.ts` `TraceStep`) and returns lines of text.
 *
 * ```
 *   telegram 1
 *     frame      hdlc at input byte 0 (1 link frame): payload of 117 bytes
 *     apdu       general-glo-ciphering (db): system title …, security control 0x30 …
 *     decrypted  100 bytes; GCM tag verified with the authentication key
 *     apdu       data-notification (0f): invoke id 0x…, date-time absent; body at byte 6
 *     body       A-XDR; offsets count from the start of the APDU
 *         6  02 0e           structure of 14
 *         8  12 00 ec          [0] long-unsigned 236 → 1-0:32.7.0 voltage L1 = 236 V (scale: rule "burgenland")
 *     layout     burgenland: Netz Burgenland E450: …   (then why the others did not fit)
 *     model      E450 (…)
 *     result     decoded …                             (then anything withheld, and why)
 * ```
 *
 * No trace step carries a key, so none can be printed; the header says so. The decrypted
 * content is printed: that is the point, and the header says that too.
 *
 * @module
 */

import { ByteReader, hex2, latin1, toHex } from "./bytes.ts";
import { type AxdrValue, DataTag, decodeDataWhole, type Spans } from "./dlms/axdr.ts";
import { formatDateTime, looksLikeDateTime, parseDateTime } from "./dlms/datetime.ts";
import type { Apdu, CipheredApdu, DataNotification } from "./dlms/apdu.ts";
import type { SecurityLevel } from "./dlms/security.ts";
import { interpretDsmr } from "./cosem/dsmr.ts";
import { interpret, LayoutError, type MeterType } from "./cosem/interpret.ts";
import { POSITIONAL_LAYOUTS } from "./cosem/layouts.ts";
import { formatObis, namedValueFor, OBIS_NAMES, parseObis } from "./cosem/obis.ts";
import type { Interpretation, Register, Scale } from "./cosem/reading.ts";
import { quantityOf } from "./cosem/scale.ts";
import { isContainer, isObis, isPrintable } from "./cosem/values.ts";
import { manufacturerFromSystemTitle } from "./homeassistant/discovery.ts";
import { isLayeredError } from "./errors.ts";
import type { TelegramResult, TraceStep } from "./pipeline.ts";

/** The first lines of an explanation. */
export const EXPLAIN_HEADER: readonly string[] = [
  "# smartmeter decode --explain: what each layer saw, telegram by telegram.",
  "# No key is printed here: neither --key nor --auth-key, nor anything made from them.",
  "# The decrypted content is printed (your meter's readings and ids): look it over before you post it.",
];

const LABEL = 11;
const INDENT = "  ";
const CONTINUED = INDENT + " ".repeat(LABEL);
/** Leaf bytes shown in the tree before "…". */
const SHOWN_BYTES = 16;
/** Width of the column of encoded bytes in the tree (a 9-byte XT211 descriptor fits). */
const HEX_COLUMN = 28;
/** Octet-string bytes shown as hex before "…". */
const SHOWN_HEX = 32;

const line = (label: string, text: string) => `${INDENT}${label.padEnd(LABEL)}${text}`;

/** Descriptions of the layouts that are not positional, for the layout line. */
const LAYOUT_DESCRIPTIONS: Readonly<Record<string, string>> = {
  "push-object-list":
    "the push object list of {class id, OBIS, attribute, data index} names each value",
  "obis-tagged": "each value comes with its OBIS code",
  "dsmr": "DSMR P1 text",
};

/** Turns the decoder's trace into lines of text. */
export class Explainer {
  readonly #meterType: MeterType;
  #telegram = 0;
  #open = false;
  #systemTitle: Uint8Array | null = null;
  #ciphered: CipheredApdu | null = null;

  constructor(opts: { meterType: MeterType }) {
    this.#meterType = opts.meterType;
  }

  /** The lines for one step. */
  step(s: TraceStep): string[] {
    const out: string[] = [];
    // Garbage between telegrams belongs to none of them.
    if (s.kind === "skipped") {
      return [line("skipped", `${s.bytes} bytes at input byte ${s.offset}: ${s.reason}`)];
    }
    if (!this.#open) {
      this.#open = true;
      this.#telegram++;
      out.push(`telegram ${this.#telegram}`);
    }
    switch (s.kind) {
      case "frame":
        out.push(line(
          "frame",
          `${s.framing} at input byte ${s.offset} (${s.frames} link frame${
            s.frames === 1 ? "" : "s"
          }): payload of ${s.payload.length} bytes`,
        ));
        break;
      case "apdu":
        out.push(...this.#apdu(s.apdu, s.bytes));
        break;
      case "decrypted":
        this.#systemTitle = s.systemTitle;
        out.push(line("decrypted", `${s.plaintext.length} bytes; ${this.#tag(s.security)}`));
        break;
      case "result":
        out.push(...this.#result(s.result));
        this.#open = false;
        this.#systemTitle = null;
        this.#ciphered = null;
        break;
    }
    return out;
  }

  #tag(security: SecurityLevel): string {
    const a = this.#ciphered;
    if (a === null || a.authTag === null) return "no GCM tag sent";
    return security.endsWith("authenticated")
      ? "GCM tag verified with the authentication key"
      : "GCM tag sent but not checked (no authentication key given)";
  }

  #apdu(apdu: Apdu, bytes: Uint8Array): string[] {
    switch (apdu.kind) {
      case "block":
        return [line(
          "apdu",
          `general-block-transfer (e0): block ${apdu.blockNumber}${
            apdu.last ? ", the last" : ""
          }, ${apdu.data.length} bytes of data`,
        )];
      case "ciphered": {
        this.#ciphered = apdu;
        const st = apdu.systemTitle;
        const maker = st ? manufacturerFromSystemTitle(st) : null;
        const title = st
          ? `system title ${toHex(st)} (${latin1(st.subarray(0, 3))}${maker ? `, ${maker}` : ""})`
          : "no system title (service-specific ciphering)";
        const flags = [
          `suite ${apdu.suite}`,
          ...(apdu.authenticated ? ["authenticated"] : []),
          ...(apdu.encrypted ? ["encrypted"] : []),
          ...(apdu.broadcastKey ? ["broadcast key"] : []),
          ...(apdu.compressed ? ["compressed"] : []),
        ];
        return [line(
          "apdu",
          `${apdu.service}-ciphering (${hex2(apdu.tag)}): ${title}, security control 0x${
            hex2(apdu.securityControl)
          } (${
            flags.join(", ")
          }), invocation counter ${apdu.invocationCounter}, ${apdu.ciphertext.length} bytes of ciphertext${
            apdu.authTag ? `, GCM tag of ${apdu.authTag.length} bytes` : ""
          }`,
        )];
      }
      case "data-notification":
        return this.#notification(apdu, bytes);
      case "text":
        return this.#dsmr(apdu.text);
    }
  }

  #notification(n: DataNotification, bytes: Uint8Array): string[] {
    const time = n.dateTime ? formatDateTime(n.dateTime) ?? "unspecified" : "absent";
    const out = [line(
      "apdu",
      `data-notification (0f): invoke id 0x${
        n.invokeId.toString(16).padStart(8, "0")
      }, date-time ${time}; body at byte ${n.bodyOffset}`,
    )];
    // Decode the body again, this time noting where each value sits.
    const spans: Spans = new Map();
    const r = new ByteReader(bytes.subarray(n.bodyOffset), "axdr", n.bodyOffset);
    const body = decodeDataWhole(r, 0, spans);
    let interpretation: Interpretation | null = null;
    let failure: LayoutError | null = null;
    try {
      interpretation = interpret(body, {
        headerTime: n.dateTime,
        systemTitle: this.#systemTitle,
        meterType: this.#meterType,
      });
    } catch (e) {
      if (!(e instanceof LayoutError)) throw e;
      failure = e;
    }
    const registers = new Map<AxdrValue, Register>();
    for (const reg of interpretation?.registers ?? []) if (reg.node) registers.set(reg.node, reg);
    const codes = new Set(interpretation?.registers.map((x) => x.obis) ?? []);
    out.push(line("body", "A-XDR; offsets count from the start of the APDU"));
    tree(body, spans, bytes, registers, codes, 0, null, false, out);
    if (interpretation) out.push(...layoutLines(interpretation));
    else if (failure) {
      out.push(line("layout", `none fits: ${failure.message}`));
      for (const reason of failure.reasons) out.push(`${CONTINUED}not ${reason}`);
    }
    return out;
  }

  #dsmr(text: string): string[] {
    const first = text.split("\n", 1)[0]!.trim();
    const out = [line("apdu", `DSMR text (starts with "/"), ${text.length} characters`)];
    out.push(line("dsmr", `identification line ${JSON.stringify(first)}`));
    try {
      const i = interpretDsmr(text);
      for (const r of i.registers) {
        out.push(`${CONTINUED}${named(r.obis)} = ${valueText(r)}${scaleNote(r.scale)}`);
      }
      out.push(...layoutLines(i));
    } catch (e) {
      if (!isLayeredError(e)) throw e;
      out.push(line("dsmr", `not readable: ${e.message}`));
    }
    return out;
  }

  #result(r: TelegramResult): string[] {
    if (!r.ok) {
      return [line("result", `failed at ${r.stage}: ${r.error}`)];
    }
    const named = Object.keys(r.reading.values).length;
    const out = [line(
      "result",
      `decoded: ${r.framing}, ${r.security}, layout ${r.layout}, ${named} named value${
        named === 1 ? "" : "s"
      }`,
    )];
    for (const w of r.reading.withheld ?? []) out.push(`${CONTINUED}withheld: ${w.reason}`);
    return out;
  }
}

function layoutLines(i: Interpretation): string[] {
  const description = POSITIONAL_LAYOUTS.find((l) => l.name === i.layout)?.description ??
    LAYOUT_DESCRIPTIONS[i.layout] ?? "";
  const out = [line("layout", `${i.layout}: ${description}`)];
  for (const note of i.notes ?? []) out.push(`${CONTINUED}${note}`);
  for (const reason of i.tried ?? []) out.push(`${CONTINUED}not ${reason}`);
  out.push(line("model", i.model ? i.model : "not told by this telegram"));
  return out;
}

/** Prints `v` and its children, one line each. */
function tree(
  v: AxdrValue,
  spans: Spans,
  bytes: Uint8Array,
  registers: ReadonlyMap<AxdrValue, Register>,
  codes: ReadonlySet<string>,
  depth: number,
  index: number | null,
  inDescriptor: boolean,
  out: string[],
): void {
  const span = spans.get(v);
  const at = span ? String(span[0]).padStart(5) : "    ?";
  const head = span ? encodedHead(v, bytes.subarray(span[0], span[1])) : "";
  const position = index === null ? "" : `[${index}] `;
  let text = `${position}${valueOf(v, codes, inDescriptor)}`;
  const r = registers.get(v);
  if (r) text += ` → ${named(r.obis)} = ${valueText(r)}${scaleNote(r.scale)}`;
  out.push(`${CONTINUED}${at}  ${head.padEnd(HEX_COLUMN)}${"  ".repeat(depth)}${text}`);
  if (!isContainer(v)) return;
  const descriptor = isDescriptor(v);
  v.items.forEach((item, k) =>
    tree(item, spans, bytes, registers, codes, depth + 1, k, descriptor, out)
  );
}

/** A container's tag and length bytes, or a leaf's bytes (shortened). */
function encodedHead(v: AxdrValue, encoded: Uint8Array): string {
  const tagged = encoded[0] === DataTag.ARRAY || encoded[0] === DataTag.STRUCTURE;
  const shown = isContainer(v) && tagged
    ? encoded.subarray(0, containerHeadLength(encoded))
    : encoded;
  const hex = Array.from(shown.subarray(0, SHOWN_BYTES), hex2).join(" ");
  return shown.length > SHOWN_BYTES ? `${hex} …` : hex;
}

/** Tag and BER length of an array or structure: `02 0e`, `01 81 90`. */
function containerHeadLength(encoded: Uint8Array): number {
  const first = encoded[1] ?? 0;
  return first & BER_LONG_FORM ? 2 + (first & BER_LENGTH_BYTES) : 2;
}
const BER_LONG_FORM = 0x80;
const BER_LENGTH_BYTES = 0x7f;

/** `{class id, OBIS, attribute[, data index]}`: its OBIS code is named as one. */
function isDescriptor(v: AxdrValue): boolean {
  return v.type === "structure" && (v.items.length === 3 || v.items.length === 4) &&
    v.items[0]!.type === "long-unsigned" && isObis(v.items[1]!);
}

function valueOf(v: AxdrValue, codes: ReadonlySet<string>, inDescriptor: boolean): string {
  switch (v.type) {
    case "null":
    case "dont-care":
      return v.type;
    case "array":
    case "structure":
      return `${v.type} of ${v.items.length}`;
    case "boolean":
      return `boolean ${v.value}`;
    case "bit-string":
      return `bit-string of ${v.bits} bits ${toHex(v.bytes)}`;
    case "long64":
    case "long64-unsigned":
      return `${v.type} ${v.value.toString()}`;
    case "octet-string": {
      if (isObis(v)) {
        const code = formatObis(v.bytes);
        if (inDescriptor || codes.has(code)) {
          const name = nameOf(code);
          return `octet-string OBIS ${code}${name ? ` (${name})` : ""}`;
        }
      }
      if (looksLikeDateTime(v.bytes)) {
        return `octet-string date-time ${formatDateTime(parseDateTime(v.bytes)) ?? "unspecified"}`;
      }
      if (v.bytes.length > 0 && isPrintable(v.bytes)) {
        return `octet-string ${JSON.stringify(latin1(v.bytes))}`;
      }
      const hex = toHex(v.bytes.subarray(0, SHOWN_HEX));
      return `octet-string of ${v.bytes.length} bytes ${hex}${
        v.bytes.length > SHOWN_HEX ? "…" : ""
      }`;
    }
    case "visible-string":
    case "utf8-string":
      return `${v.type} ${JSON.stringify(v.text)}`;
    case "date-time":
    case "date":
    case "time":
      return `${v.type} ${formatDateTime(v.value) ?? "unspecified"}`;
    default:
      return `${v.type} ${v.value}`;
  }
}

/** `1-0:31.7.0 current L1`, or the code alone when it has no name here. */
function named(code: string): string {
  const name = nameOf(code);
  return name ? `${code} ${name}` : code;
}

/** What an OBIS code stands for: a named value, a known register, or its quantity. */
function nameOf(code: string): string | null {
  const named = namedValueFor(code);
  if (named) {
    return named.key.replace(/_(wh|varh|w|var|v|a|hz|deg)$/, "").replace(/_/g, " ")
      .replace(/ l([123])$/, " L$1");
  }
  const known = OBIS_NAMES[code];
  if (known) return known;
  const q = quantityOf(code);
  if (q === null) return null;
  // IEC 62056-6-1 value group C: 21–40 are about L1, 41–60 L2, 61–80 L3.
  const c = parseObis(code)[2]!;
  const phase = c >= 81 || c < 21 ? "" : ` L${Math.floor((c - 1) / 20)}`;
  return `${q.quantity.replace(/-/g, " ")}${phase}`;
}

function valueText(r: Register): string {
  if (typeof r.value === "string") return JSON.stringify(r.value);
  return r.unit ? `${r.value} ${r.unit}` : String(r.value);
}

function scaleNote(s: Scale | undefined): string {
  if (s === undefined) return "";
  switch (s.from) {
    case "telegram":
      return " (scale: the telegram's)";
    case "rule":
      return ` (scale: rule "${s.rule}")`;
    case "unknown":
      return " (scale unknown)"; // why: once, in the layout's notes and under "withheld"
    case "none":
      return " (a count, as sent)";
  }
}
