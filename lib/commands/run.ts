/**
 * `smartmeter run` (the daemon) and `smartmeter capture` (raw bytes as hex).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runDaemon } from "../daemon.ts";
import { logConfigNotes } from "../config_notes.ts";
import { resultJson } from "./decode.ts";
import { toHex } from "../bytes.ts";
import { readResilient, writeReplies } from "../sources/source.ts";
import { Framer } from "../framing/framer.ts";
import { sourceFromConfig } from "../sources/open.ts";
import { type CommandIO, Exit, type ProcessContext, secondsOption, UsageError } from "./io.ts";
import type { Config } from "../config.ts";
import type { TelegramResult } from "../pipeline.ts";
import { StatusModel } from "../status.ts";
import { BadConfig, findConfigPath, processLogger, readConfig, redactSecrets } from "./setup.ts";
import { whyUnwritable } from "./access.ts";
import { httpOption } from "./http_option.ts";

export const RUN_USAGE = `smartmeter [run] [--config FILE] [--json] [--no-mqtt] [--http HOST:PORT]
                 [--state-dir DIR]

Reads the meter and publishes to MQTT with Home Assistant discovery until stopped.
The config is FILE, else $SMARTMETER_CONFIG, else /etc/smartmeter/config.yaml, else
/data/options.json (Home Assistant add-on). Exit status 78 on a bad config.

  -c, --config FILE   the config file (YAML or JSON)
  --json              also print every telegram as a JSON line on stdout
  --no-mqtt           do not connect to MQTT (with --json: a pure reader)
  --http HOST:PORT    serve the web page, JSON API and metrics there (overrides
                      http.listen), e.g. 127.0.0.1:8080
  --ingress           also serve them to Home Assistant's ingress proxy (the add-on
                      does this: port 8099, answering only 172.30.32.2)
  --state-dir DIR     keep frame counters and energy registers across restarts in DIR
                      (overrides state_dir; under systemd: StateDirectory=)`;

export const CAPTURE_USAGE = `smartmeter capture [--config FILE] [--seconds N] [--out FILE]

Records the raw bytes of the configured source as hex text (32 bytes a line), for
'smartmeter decode' and for support requests. Keys never appear in a capture. A meter
that must be answered (Netz OÖ AMIS) is answered, so that it sends its data.

  -c, --config FILE   the config file
  --seconds N         stop after N seconds (default 60)
  --out FILE          write to FILE instead of stdout`;

function usageFail(io: CommandIO, command: string, e: unknown): number {
  io.err(`smartmeter ${command}: ${(e as Error).message}`);
  io.err(`Try: smartmeter ${command} --help`);
  return Exit.USAGE;
}

function isArgError(e: unknown): boolean {
  return e instanceof UsageError ||
    Boolean((e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS"));
}

/** `smartmeter run`. */
export async function runCommand(
  args: string[],
  io: CommandIO,
  ctx: ProcessContext,
): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        config: { type: "string", short: "c" },
        json: { type: "boolean", default: false },
        "no-mqtt": { type: "boolean", default: false },
        http: { type: "string" },
        ingress: { type: "boolean", default: false },
        "state-dir": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }));
    if (values.http !== undefined) httpOption(values.http);
    if (values["state-dir"]?.trim() === "") {
      throw new UsageError("--state-dir needs a directory");
    }
  } catch (e) {
    if (isArgError(e)) return usageFail(io, "run", e);
    throw e;
  }
  if (values.help) {
    io.out(RUN_USAGE);
    return Exit.OK;
  }
  const logger = processLogger("info", ctx.env, io.err, ctx.stderrIsTerminal);
  const log = logger.get("smartmeter");
  let path: string;
  let config: Config;
  try {
    path = await findConfigPath(values.config, ctx.env);
    config = await readConfig(path, ctx.env);
  } catch (e) {
    if (e instanceof BadConfig) {
      log.error(e.message);
      logConfigNotes(log, e.notes);
      return Exit.CONFIG;
    }
    throw e;
  }
  /** The command line's options win over the file, at start and after every reload. */
  const withOptions = (c: Config): Config => {
    if (values.http !== undefined) c.http = httpOption(values.http);
    if (values["state-dir"] !== undefined) {
      c.stateDir = values["state-dir"];
      c.stateDirFrom = "state_dir";
    }
    logger.options.level = c.logging;
    redactSecrets(logger, c);
    return c;
  };
  config = withOptions(config);

  // --json: standard output is the point; once it is closed the daemon ends (exit 1).
  const outputGone = new AbortController();
  let outputError: string | null = null;
  const onResult = (r: TelegramResult) => {
    if (outputError !== null) return;
    try {
      io.out(JSON.stringify(resultJson(r)));
    } catch (e) {
      outputError = (e as Error).message;
      log.error(`${outputError}: stopping, since --json has nowhere to write`);
      outputGone.abort();
    }
  };

  // SIGHUP: the config is read again. A good one restarts the pipeline with it (the guards
  // carry on through the state file); a bad one is refused, each problem named, and the
  // daemon runs on with the config it has.
  const status = new StatusModel({ version: ctx.version });
  for (;;) {
    const restart = new AbortController();
    const reloaded: { config: Config | null } = { config: null };
    const reload = async () => {
      log.info(`SIGHUP: reading the config ${path} again`);
      try {
        const c = await readConfig(path, ctx.env);
        if (restart.signal.aborted) return;
        reloaded.config = c;
        restart.abort();
      } catch (e) {
        log.error(
          `${(e as Error).message}\nThe new config is not used: still running on the one ` +
            "read before",
        );
        if (e instanceof BadConfig) logConfigNotes(log, e.notes);
      }
    };
    ctx.reload?.addEventListener("reload", reload);
    let code: number;
    try {
      code = await runDaemon({
        config,
        logger,
        signal: AbortSignal.any([ctx.signal, outputGone.signal, restart.signal]),
        version: ctx.version,
        env: ctx.env,
        mqtt: !values["no-mqtt"],
        ingress: values.ingress,
        status,
        ...(values.json ? { onResult } : {}),
      });
    } finally {
      ctx.reload?.removeEventListener("reload", reload);
    }
    if (outputError !== null) return Exit.FAILED;
    if (reloaded.config === null || ctx.signal.aborted) return code;
    config = withOptions(reloaded.config);
    log.info("Config reloaded: starting again with it");
  }
}

/** `smartmeter capture`. */
export async function captureCommand(
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
        seconds: { type: "string", default: "60" },
        out: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }));
    seconds = secondsOption(values.seconds);
    if (values.out === "") throw new UsageError("--out must not be empty");
  } catch (e) {
    if (isArgError(e)) return usageFail(io, "capture", e);
    throw e;
  }
  if (values.help) {
    io.out(CAPTURE_USAGE);
    return Exit.OK;
  }
  const logger = processLogger("info", ctx.env, io.err, ctx.stderrIsTerminal);
  const log = logger.get("capture");
  let config;
  try {
    config = await readConfig(await findConfigPath(values.config, ctx.env), ctx.env);
  } catch (e) {
    if (e instanceof BadConfig) {
      log.error(e.message);
      return Exit.CONFIG;
    }
    throw e;
  }
  redactSecrets(logger, config);
  let source;
  try {
    source = await sourceFromConfig(config.source, { log });
  } catch (e) {
    log.error((e as Error).message);
    return Exit.CONFIG;
  }
  const stop = AbortSignal.any([ctx.signal, AbortSignal.timeout(seconds * 1000)]);
  let file: Deno.FsFile | null = null;
  if (values.out !== undefined) {
    try {
      file = await Deno.open(values.out, { write: true, create: true, truncate: true });
    } catch (e) {
      log.error(`Cannot write to ${values.out}: ${await whyUnwritable(values.out, e)}`);
      return Exit.USAGE;
    }
  }
  const encoder = new TextEncoder();
  const writeLine = async (line: string) => {
    if (file) {
      const data = encoder.encode(line + "\n");
      let off = 0;
      while (off < data.length) off += await file.write(data.subarray(off));
    } else io.out(line);
  };
  let total = 0;
  let pending = new Uint8Array(0);
  const framer = new Framer(); // only to answer what must be answered
  log.info(`Capturing ${source.description} for ${seconds} s`);
  try {
    for await (const chunk of readResilient(source, { signal: stop, log })) {
      const replies = framer.push(chunk, performance.now()).flatMap((e) =>
        e.kind === "reply" ? [e.bytes] : []
      );
      writeReplies(source, replies, (e) => log.warning(`Cannot answer the meter: ${e.message}`));
      total += chunk.length;
      const joined = new Uint8Array(pending.length + chunk.length);
      joined.set(pending);
      joined.set(chunk, pending.length);
      let at = 0;
      for (; at + 32 <= joined.length; at += 32) {
        await writeLine(toHex(joined.subarray(at, at + 32)));
      }
      pending = joined.slice(at);
    }
    if (pending.length > 0) await writeLine(toHex(pending));
  } finally {
    file?.close();
  }
  log.info(`Captured ${total} bytes${values.out ? ` to ${values.out}` : ""}`);
  return total > 0 ? Exit.OK : Exit.FAILED;
}
