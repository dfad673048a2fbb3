/**
 * `smartmeter decode`: a capture in, one JSON line per telegram out.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fromHex, HexStreamDecoder } from "../bytes.ts";
import { Decoder, type TelegramResult } from "../pipeline.ts";
import { parseMeterType } from "../cosem/interpret.ts";
import { EXPLAIN_HEADER, Explainer } from "../explain.ts";
import { type CommandIO, Exit, isSystemError, parseKeyOption, UsageError } from "./io.ts";
import { whyUnreadable } from "./access.ts";

export const DECODE_USAGE =
  `smartmeter decode [--key HEX] [--auth-key HEX] [--meter-type NAME] [--system-title HEX] [--binary] [--explain] [FILE|-]

Decodes a capture (hex text by default: any case, whitespace and newlines allowed; --binary
for raw bytes) from FILE or standard input and prints one JSON object per telegram.
Exit status: 0 every telegram decoded, 1 any failed, 2 bad usage.

  --key HEX            encryption key (GUEK), 32 hex characters
  --auth-key HEX       authentication key (GAK): the GCM tag must then verify
  --meter-type NAME    pin the layout (auto, burgenland, noe_evn, ...)
  --system-title HEX   system title for APDUs that do not carry one (16 hex characters)
  --binary             the input is raw bytes, not hex text
  --explain            before each telegram's JSON, print what every layer saw: frame,
                       APDU, security header, the A-XDR tree with offsets and types, the
                       OBIS names, the rule that scaled each value, and why the layout was
                       or was not recognised (for bug reports: no key is ever printed)`;

/** One result as the JSON object `decode` prints (DESIGN.md "Command line"). */
export function resultJson(r: TelegramResult): Record<string, unknown> {
  if (!r.ok) {
    const o: Record<string, unknown> = { ok: false, stage: r.stage, error: r.error };
    if (r.framing) o.framing = r.framing;
    if (r.offset !== undefined) o.offset = r.offset;
    return o;
  }
  const { reading } = r;
  return {
    ok: true,
    framing: r.framing,
    security: r.security,
    layout: r.layout,
    system_title: reading.system_title,
    frame_counter: reading.frame_counter,
    time: reading.time,
    meter_id: reading.meter_id,
    model: reading.model ?? null,
    values: reading.values,
    obis: reading.obis,
    ...(reading.withheld ? { withheld: reading.withheld } : {}),
  };
}

/** Runs `decode` with its arguments (after the word `decode`); resolves to the exit status. */
export async function decodeCommand(args: string[], io: CommandIO): Promise<number> {
  let decoder: Decoder;
  let binary: boolean;
  let explain: Explainer | null = null;
  let file: string | undefined;
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        key: { type: "string" },
        "auth-key": { type: "string" },
        "meter-type": { type: "string" },
        "system-title": { type: "string" },
        binary: { type: "boolean", default: false },
        explain: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      io.out(DECODE_USAGE);
      return Exit.OK;
    }
    if (positionals.length > 1) {
      throw new UsageError(`decode takes one input file, got ${positionals.length}`);
    }
    file = positionals[0];
    binary = values.binary;
    let meterType;
    try {
      meterType = parseMeterType(values["meter-type"] ?? "auto");
    } catch (e) {
      throw new UsageError(`--meter-type: ${(e as Error).message}`);
    }
    let systemTitle: Uint8Array | null = null;
    if (values["system-title"] !== undefined) {
      try {
        systemTitle = fromHex(values["system-title"]);
      } catch {
        systemTitle = null;
      }
      if (systemTitle?.length !== 8) {
        throw new UsageError("--system-title must be 16 hex characters (8 bytes)");
      }
    }
    if (values.explain) explain = new Explainer({ meterType });
    const explainer = explain;
    decoder = await Decoder.create({
      ...(explainer === null ? {} : {
        trace: (step) => {
          for (const l of explainer.step(step)) io.out(l);
          if (step.kind === "result") io.out(JSON.stringify(resultJson(step.result)));
        },
      }),
      key: values.key !== undefined ? parseKeyOption("--key", values.key) : null,
      authKey: values["auth-key"] !== undefined
        ? parseKeyOption("--auth-key", values["auth-key"])
        : null,
      meterType,
      systemTitle,
    });
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      io.err(`smartmeter decode: ${(e as Error).message}`);
      io.err("Try: smartmeter decode --help");
      return Exit.USAGE;
    }
    throw e;
  }

  let input: ReadableStream<Uint8Array>;
  if (file === undefined || file === "-") input = io.stdin;
  else {
    try {
      input = await io.openFile(file);
    } catch (e) {
      io.err(`smartmeter decode: cannot read ${file}: ${await whyUnreadable(file, e)}`);
      return Exit.USAGE;
    }
  }

  let failed = 0;
  const emit = (results: TelegramResult[]) => {
    for (const r of results) {
      if (!r.ok) failed++;
      // With --explain, each result was printed after its explanation already.
      if (explain === null) io.out(JSON.stringify(resultJson(r)));
    }
  };
  if (explain !== null) { for (const l of EXPLAIN_HEADER) io.out(l); }
  const hex = new HexStreamDecoder();
  const text = new TextDecoder();
  try {
    for await (const chunk of input) {
      const bytes = binary ? chunk : hex.push(text.decode(chunk, { stream: true }));
      emit(await decoder.push(bytes));
    }
    if (!binary) {
      hex.push(text.decode());
      hex.end();
    }
  } catch (e) {
    if (e instanceof SyntaxError && !binary) {
      io.err(`smartmeter decode: ${e.message}`);
      return Exit.USAGE;
    }
    if (isSystemError(e)) {
      // A directory opens, and fails only when read.
      const name = file === undefined || file === "-" ? "standard input" : file;
      io.err(`smartmeter decode: cannot read ${name}: ${await whyUnreadable(name, e)}`);
      return Exit.USAGE;
    }
    throw e;
  }
  emit(await decoder.end());
  const skipped = decoder.stats.skippedBytes;
  if (skipped > 0 && decoder.stats.frames > 0) {
    // Garbage before the first frame is normal in a capture; say how much there was, so
    // that nothing is left out in silence.
    io.err(
      `smartmeter decode: ${skipped} byte${
        skipped === 1 ? " was" : "s were"
      } not part of any frame and were skipped`,
    );
  }
  return failed > 0 ? Exit.FAILED : Exit.OK;
}
