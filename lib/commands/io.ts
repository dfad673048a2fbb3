/**
 * What a command needs from the outside world, passed in so that commands can be tested
 * without spawning processes.
 *
 * @module
 */

/** Standard streams and file access of a command. */
export interface CommandIO {
  readonly stdin: ReadableStream<Uint8Array>;
  /** Opens a file for reading. Rejects with a Deno error when it cannot be read. */
  openFile(path: string): Promise<ReadableStream<Uint8Array>>;
  /** Writes one line to standard output. @throws {OutputClosed} when it cannot */
  out(line: string): void;
  /** Writes one line to standard error; never throws (a closed stderr loses the line). */
  err(line: string): void;
}

/** Process exit codes used by every command. */
export const Exit = {
  OK: 0,
  /** Some telegrams failed, or a check did not pass. */
  FAILED: 1,
  /** Bad command line. */
  USAGE: 2,
  /** Bad configuration (EX_CONFIG): systemd must not restart in a loop. */
  CONFIG: 78,
} as const;

/** Whether `e` is an error of the operating system (a file that could not be read, ...). */
export function isSystemError(e: unknown): boolean {
  const code = e instanceof Error ? (e as { code?: unknown }).code : undefined;
  return typeof code === "string" && /^E[A-Z]+$/.test(code);
}

/**
 * Standard output cannot be written (the pipe's reader has gone, `| head` say). Thrown by
 * {@link CommandIO.out}; a command whose output is its purpose ends with it (exit 1).
 */
export class OutputClosed extends Error {
  override name = "OutputClosed";
  constructor(cause: unknown) {
    super(
      `Cannot write to standard output: ${
        cause instanceof Error ? cause.message : String(cause)
      } (whatever read it has gone)`,
    );
  }
}

/** A command-line mistake: printed as one line, exit status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Parses a key given in hex on the command line: 32 hex digits, spaces allowed. */
export function parseKeyOption(name: string, text: string): Uint8Array {
  const digits = text.replace(/[\s:]/g, "").replace(/^0x/i, "");
  if (!/^[0-9a-fA-F]*$/.test(digits) || digits.length !== 32) {
    throw new UsageError(
      `${name} must be 32 hex characters (16 bytes), got ${digits.length} characters${
        /^[0-9a-fA-F]*$/.test(digits) ? "" : " with non-hex ones"
      }`,
    );
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(digits.substring(2 * i, 2 * i + 2), 16);
  return out;
}

/** What long-running commands need besides streams. */
export interface ProcessContext {
  readonly env: Record<string, string | undefined>;
  /** Aborted by SIGINT/SIGTERM. */
  readonly signal: AbortSignal;
  /** Fires "reload" events (SIGHUP) for `run`; absent for the other commands. */
  readonly reload?: EventTarget;
  /** Whether standard error is a terminal (for log timestamps). */
  readonly stderrIsTerminal: boolean;
  readonly version: string;
}

/** A `--seconds` value: a positive number. @throws {UsageError} */
export function secondsOption(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    throw new UsageError(`--seconds must be a positive number, got "${text}"`);
  }
  return n;
}
