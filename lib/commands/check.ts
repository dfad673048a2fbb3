/**
 * `smartmeter check`: is the config valid, do telegrams arrive and decode, does the MQTT
 * broker take us? One report a user can read (and paste into a support request: it holds
 * no key or password).
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { Config } from "../config.ts";
import { configNoteLines } from "../config_notes.ts";
import { Decoder, type TelegramResult } from "../pipeline.ts";
import { parseMeterType } from "../cosem/interpret.ts";
import { readResilient, writeReplies } from "../sources/source.ts";
import { describeLine, sourceFromConfig } from "../sources/open.ts";
import { describeUser, probeMqtt, probeTopic } from "../sinks/mqtt.ts";
import { supervisorMqtt } from "../supervisor.ts";
import { memoryLogger } from "../log.ts";
import { type CommandIO, Exit, type ProcessContext, secondsOption, UsageError } from "./io.ts";
import { BadConfig, findConfigPath, readConfig } from "./setup.ts";

export const CHECK_USAGE = `smartmeter check [--config FILE] [--seconds N] [--no-mqtt]

Validates the config, listens to the meter until one telegram decodes (at most N
seconds, default 30; 70 for meter_type amis, whose meter searches for its reader once a
minute), and tries the MQTT broker: a test message to <prefix>/<device_id>/check must come
back. Prints what it found and what to do.
Exit status: 0 all good, 1 something failed, 78 the config is bad.`;

/** How long check listens by default, s; an AMIS meter's search comes once a minute. */
const CHECK_SECONDS = 30;
const AMIS_CHECK_SECONDS = 70;

/** `smartmeter check`. */
export async function checkCommand(
  args: string[],
  io: CommandIO,
  ctx: ProcessContext,
): Promise<number> {
  let values;
  let seconds: number;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        config: { type: "string", short: "c" },
        seconds: { type: "string" },
        "no-mqtt": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }));
    seconds = values.seconds === undefined ? 0 : secondsOption(values.seconds);
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      io.err(`smartmeter check: ${(e as Error).message}`);
      return Exit.USAGE;
    }
    throw e;
  }
  if (values.help) {
    io.out(CHECK_USAGE);
    return Exit.OK;
  }

  let path: string;
  let config: Config;
  try {
    path = await findConfigPath(values.config, ctx.env);
    config = await readConfig(path, ctx.env);
  } catch (e) {
    if (e instanceof BadConfig) {
      io.out(`✗ Config: ${e.message}`);
      for (const line of configNoteLines(e.notes)) io.out(`  ${line}`);
      return Exit.CONFIG;
    }
    throw e;
  }
  io.out(`✓ Config ${path} is valid`);
  for (const line of configNoteLines(config)) io.out(`  ${line}`);
  const s = config.source;
  const line = s.baudRate === "auto"
    ? "baudrate auto"
    : describeLine({ ...s, baudRate: s.baudRate });
  io.out(`  meter type ${config.meterType}; port ${s.port} (${line})`);
  io.out(
    `  key ${config.key ? "set" : "NOT set"}; auth key ${config.authKey ? "set" : "not set"}`,
  );
  if (seconds === 0) {
    const amis = config.meterType.toLowerCase() === "amis";
    seconds = amis ? AMIS_CHECK_SECONDS : CHECK_SECONDS;
    if (amis) {
      io.out(
        `  an AMIS meter searches for its reader once a minute: listening up to ${seconds} s`,
      );
    }
  }

  let ok = await checkMeter(config, seconds, io, ctx);
  if (!values["no-mqtt"]) ok = await checkMqtt(config, io, ctx) && ok;
  return ok ? Exit.OK : Exit.FAILED;
}

function summary(r: TelegramResult & { ok: true }): string {
  const v = r.reading.values;
  const parts: string[] = [];
  if (v.energy_import_wh !== undefined) parts.push(`energy import ${v.energy_import_wh} Wh`);
  if (v.power_import_w !== undefined) parts.push(`power import ${v.power_import_w} W`);
  if (v.voltage_l1_v !== undefined) parts.push(`L1 ${v.voltage_l1_v} V`);
  const id = r.reading.meter_id ? `, meter ${r.reading.meter_id}` : "";
  return `${r.framing}, ${r.security}, layout ${r.layout}${id}: ${parts.join(", ")}`;
}

async function checkMeter(
  config: Config,
  seconds: number,
  io: CommandIO,
  ctx: ProcessContext,
): Promise<boolean> {
  const { logger, lines } = memoryLogger("info");
  const log = logger.get("check");
  let source;
  try {
    source = await sourceFromConfig(config.source, { log });
  } catch (e) {
    io.out(`✗ Meter: ${(e as Error).message}`);
    return false;
  }
  const decoder = await Decoder.create({
    key: config.key,
    authKey: config.authKey,
    meterType: parseMeterType(config.meterType),
  });
  const stop = new AbortController();
  const signal = AbortSignal.any([ctx.signal, stop.signal, AbortSignal.timeout(seconds * 1000)]);
  let decoded: (TelegramResult & { ok: true }) | null = null;
  const errors: string[] = [];
  let openError: string | null = null;
  // What failed, with the address or path when the error does not name it.
  const named = (e: Error) =>
    e.message.includes(source.description)
      ? e.message
      : `${
        source.kind === "file" ? "Cannot read" : "Cannot open"
      } ${source.description}: ${e.message}`;
  try {
    for await (
      const chunk of readResilient(source, {
        signal,
        log,
        listener: { lost: (e) => openError ??= named(e) },
      })
    ) {
      const fed = decoder.feed(chunk, performance.now());
      writeReplies(source, fed.replies, (e) => {
        if (!signal.aborted) errors.push(`answer: ${e.message}`); // not the port closing
      });
      for (const r of await fed.results) {
        if (r.ok) decoded ??= r;
        else errors.push(`${r.stage}: ${r.error}`);
      }
      if (decoded) {
        stop.abort();
        break;
      }
    }
    if (!decoded && source.kind === "file") {
      for (const r of await decoder.end()) {
        if (r.ok) decoded ??= r;
        else errors.push(`${r.stage}: ${r.error}`);
      }
    }
  } catch (e) {
    openError = named(e as Error);
  }
  for (const l of lines.filter((l) => l.includes("baudrate auto: frames arrive"))) {
    io.out(`  ${l.replace(/^INFO check: /, "")}`);
  }
  if (decoded) {
    io.out(`✓ Meter: telegram decoded (${summary(decoded)})`);
    return true;
  }
  const st = decoder.stats;
  const type = config.meterType.toLowerCase();
  if (st.bytes === 0 && source.kind === "file") {
    io.out(`✗ Meter: ${openError ?? `the capture file ${source.description} holds no bytes`}`);
    return false;
  }
  if (st.bytes === 0) {
    io.out(
      `✗ Meter: ${openError ?? `no bytes from ${source.description} in ${seconds} s`}`,
    );
    if (!openError) {
      io.out(
        "  check the cable or the IR head's position, and that your grid operator has enabled the customer interface",
      );
      if ((type === "auto" || type === "amis") && seconds < AMIS_CHECK_SECONDS) {
        io.out(
          `  a Netz OÖ AMIS meter sends nothing until its search, once a minute: try --seconds ${AMIS_CHECK_SECONDS}`,
        );
      }
    }
    return false;
  }
  if (st.searches > 0 && st.decoded === 0 && errors.length === 0) {
    io.out(
      `✗ Meter: it searched for its reader ${st.searches} time(s) in ${seconds} s (M-Bus SND_NKE: a Netz OÖ AMIS meter) and was answered each time, but sent no data`,
    );
    io.out(
      "  check that the IR head sits straight on the optical port (it must send, not only receive), that the terminal cover is closed (no S1 on the display), and that nothing else answers on the port",
    );
    return false;
  }
  io.out(`✗ Meter: ${st.bytes} bytes, ${st.frames} frames, no telegram decoded in ${seconds} s`);
  if (st.frames === 0 && errors.length === 0) {
    io.out("  no frame found: check the baud rate and parity (or set dlms.baudrate: auto)");
  }
  for (const e of [...new Set(errors)].slice(0, 5)) io.out(`  ${e}`);
  return false;
}

async function checkMqtt(config: Config, io: CommandIO, ctx: ProcessContext): Promise<boolean> {
  const c = { ...config.mqtt };
  if (c.host === "") {
    try {
      const s = await supervisorMqtt(
        ctx.env.SUPERVISOR_TOKEN ?? "",
        ctx.env.SUPERVISOR_URL ?? "http://supervisor",
      );
      Object.assign(c, {
        host: s.host,
        port: s.port,
        tls: s.ssl,
        user: s.username,
        password: s.password,
        credentialsFrom: "supervisor",
      });
    } catch (e) {
      io.out(`✗ MQTT: ${(e as Error).message}`);
      return false;
    }
  }
  const problem = await probeMqtt(c);
  if (problem) {
    io.out(`✗ MQTT: ${problem}`);
    return false;
  }
  io.out(
    `✓ MQTT: connected to ${c.tls ? "mqtts" : "mqtt"}://${c.host}:${c.port} ${
      describeUser(c)
    }; a test message to "${probeTopic(c)}" came back`,
  );
  return true;
}
