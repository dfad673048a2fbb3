/**
 * The command line run in-process for tests: `main()` with its output gathered, the
 * environment and the stop signal given, and a scratch directory.
 *
 * @module
 */

import { main } from "../main.ts";
import type { CommandIO, ProcessContext } from "../lib/commands/io.ts";

/** What one command did: its exit status and its lines on stdout and stderr. */
export interface Run {
  status: number;
  out: string[];
  err: string[];
}

/** How to run it; every field has a quiet default. */
export interface RunOptions {
  /** The environment the command sees (default: empty). */
  env?: Record<string, string>;
  /** Stops the command, as SIGTERM does (default: never). */
  signal?: AbortSignal;
  /** Standard input (default: empty). */
  stdin?: string;
  /** Called with each stderr line as it is written. */
  onErr?: (line: string) => void;
}

/** Runs `smartmeter args…` in this process. */
export async function runMain(args: string[], opts: RunOptions = {}): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CommandIO = {
    stdin: ReadableStream.from(
      opts.stdin === undefined ? [] : [new TextEncoder().encode(opts.stdin)],
    ),
    openFile: async (p) => (await Deno.open(p)).readable,
    out: (l) => out.push(l),
    err: (l) => {
      err.push(l);
      opts.onErr?.(l);
    },
  };
  const ctx: ProcessContext = {
    env: opts.env ?? {},
    signal: opts.signal ?? new AbortController().signal,
    stderrIsTerminal: false,
    version: "test",
  };
  return { status: await main(args, io, () => ctx), out, err };
}

/** Calls `body` with a fresh temporary directory, removed afterwards. */
export async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
