/**
 * Helpers for end-to-end tests and measurements of the real program: `smartmeter` started
 * as its own process (`deno run -A main.ts ...`), with a config in a temporary directory.
 *
 * ```
 *  test process                                   child process
 *  writeConfig(dir, {...}) ── config.yaml ──────▶ deno run -A main.ts run -c config.yaml
 *  Smartmeter.spawn(args)  ── spawn ────────────▶   stdout, stderr ──▶ collected as text
 *  .signal("SIGTERM")      ── kill(2) ──────────▶   waitFor(/pattern/) polls the text
 *  Subscriber.open(port)   ◀── MQTT (Mosquitto) ──  publishes state, availability, ...
 *  procMemory(pid), procCpuSeconds(pid), procThreads(pid), procFilePosition(pid, path):
 *                                                 /proc/<pid>/...
 * ```
 *
 * The child gets a small, fixed environment (PATH, HOME, Deno's cache directories), so
 * that no `SMARTMETER_*` variable or `JOURNAL_STREAM` of the caller changes what it does.
 * Every process is stopped by {@link Smartmeter.stop} (SIGTERM, then SIGKILL) in a
 * `finally` block, and every temporary directory removed.
 *
 * @module
 */

import { PseudoTerminal } from "../../lib/sources/pty.ts";
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import { stringify } from "yaml";

/** The program's entry point. */
export const MAIN_PATH: string = new URL("../../main.ts", import.meta.url).pathname;
/** The project's root (the child's working directory, where deno.json is). */
export const ROOT_DIR: string = new URL("../../", import.meta.url).pathname;

/** Environment variables passed on to the child when the caller has them. */
const PASSED_ENV = ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR", "LANG"] as const;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 20 ms; rejects naming `what` after `timeoutMs`. */
export async function waitUntil(
  cond: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(20);
  }
}

/** A temporary directory that removes itself (`await using`). */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
}

export async function tempDir(prefix = "smartmeter-e2e-"): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** Writes `config` (the file's keys: `dlms`, `mqtt`, ...) as YAML; returns its path. */
export async function writeConfig(
  dir: string,
  config: Record<string, unknown>,
  name = "config.yaml",
): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, stringify(config));
  return path;
}

/** The environment the child starts with: the caller's basics plus `extra`. */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of PASSED_ENV) {
    const v = Deno.env.get(name);
    if (v !== undefined) env[name] = v;
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

export interface SpawnOptions {
  /** Variables added to the child's small environment. */
  env?: Record<string, string>;
}

/** Collects a byte stream as text, in the background. */
function collect(stream: ReadableStream<Uint8Array>, onText: (s: string) => void): Promise<void> {
  return stream.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (s) => onText(s) }),
  ).catch(() => {});
}

/** `smartmeter` running as a child process. */
export class Smartmeter implements AsyncDisposable {
  /** When the process was spawned (performance.now()). */
  readonly spawnedAt: number;
  /** Resolves when the process has exited and its output has been read to the end. */
  readonly exited: Promise<Deno.CommandStatus>;
  #stdout = "";
  #stderr = "";
  #status: Deno.CommandStatus | null = null;

  private constructor(private readonly child: Deno.ChildProcess, readonly args: string[]) {
    this.spawnedAt = performance.now();
    const out = collect(child.stdout, (s) => this.#stdout += s);
    const err = collect(child.stderr, (s) => this.#stderr += s);
    this.exited = Promise.all([child.status, out, err]).then(([status]) => {
      this.#status = status;
      return status;
    });
  }

  /** Starts `deno run -A main.ts ARGS` in the project's root. */
  static spawn(args: string[], opts: SpawnOptions = {}): Smartmeter {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN_PATH, ...args],
      cwd: ROOT_DIR,
      clearEnv: true,
      env: childEnv(opts.env),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new Smartmeter(child, args);
  }

  /** Runs to the end; resolves the status and all output. */
  static async run(
    args: string[],
    opts: SpawnOptions & { timeoutMs?: number } = {},
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const p = Smartmeter.spawn(args, opts);
    try {
      const status = await p.waitExit(opts.timeoutMs ?? 30_000);
      return { code: status.code, stdout: p.stdout, stderr: p.stderr };
    } finally {
      await p.stop();
    }
  }

  get pid(): number {
    return this.child.pid;
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Everything the process wrote so far, stdout then stderr. */
  get output(): string {
    return this.#stdout + this.#stderr;
  }

  /** The exit status, or null while it runs. */
  get status(): Deno.CommandStatus | null {
    return this.#status;
  }

  /** The lines of stderr (the log) that match `pattern`. */
  logLines(pattern: RegExp): string[] {
    return this.#stderr.split("\n").filter((l) => pattern.test(l));
  }

  /** Waits for a line of stdout or stderr matching `pattern`; resolves that line. */
  async waitFor(pattern: RegExp, timeoutMs = 10_000, after = 0): Promise<string> {
    let found: string | undefined;
    await waitUntil(
      () => {
        found = this.output.split("\n").filter((l) => pattern.test(l))[after];
        if (found === undefined && this.#status !== null) {
          throw new Error(
            `The process exited (${this.#status.code}) before writing ${pattern}:\n${this.output}`,
          );
        }
        return found !== undefined;
      },
      `${pattern} in the output of smartmeter ${this.args.join(" ")}:\n${this.output}`,
      timeoutMs,
    );
    return found!;
  }

  /** Waits for the exit; rejects after `timeoutMs` (the process keeps running). */
  async waitExit(timeoutMs = 10_000): Promise<Deno.CommandStatus> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`smartmeter did not exit within ${timeoutMs} ms:\n${this.output}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a signal (ignored when the process has exited). */
  signal(sig: Deno.Signal): void {
    if (this.#status !== null) return;
    try {
      this.child.kill(sig);
    } catch {
      // exited meanwhile
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves the exit status (idempotent). */
  async stop(graceMs = 5_000): Promise<Deno.CommandStatus> {
    if (this.#status !== null) return this.#status;
    this.signal("SIGTERM");
    try {
      return await this.waitExit(graceMs);
    } catch {
      this.signal("SIGKILL");
      return await this.exited;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

// ---- /proc ----

/**
 * Resident memory of a process, KiB: now (VmRSS) and its peak (VmHWM), and VmRSS split
 * into anonymous pages (RssAnon: heaps, stacks; the program's own memory), file-backed
 * pages (RssFile: the mapped executable and libraries; clean, shared with other processes
 * of the same file, reclaimable) and shared memory (RssShmem).
 */
export interface ProcMemory {
  rssKb: number;
  hwmKb: number;
  anonKb: number;
  fileKb: number;
  shmemKb: number;
}

/** Reads VmRSS, VmHWM, RssAnon, RssFile and RssShmem from /proc/<pid>/status. */
export function procMemory(pid: number): ProcMemory {
  const text = Deno.readTextFileSync(`/proc/${pid}/status`);
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
    if (!m) throw new Error(`/proc/${pid}/status has no ${name} line`);
    return Number(m[1]);
  };
  return {
    rssKb: field("VmRSS"),
    hwmKb: field("VmHWM"),
    anonKb: field("RssAnon"),
    fileKb: field("RssFile"),
    shmemKb: field("RssShmem"),
  };
}

/** One thread of a process, from /proc/<pid>/task/<tid>/. */
export interface ProcThread {
  tid: number;
  /** The thread's name (`comm`), e.g. "tokio-runtime-w" or "V8 DefaultWorke". */
  name: string;
  /** CPU time on the clock, ns (schedstat: finer than the clock ticks of /proc/<pid>/stat). */
  cpuNs: number;
  /** Times it went to sleep by itself: each one ended a wake-up. */
  voluntary: number;
  /** Times the scheduler took the CPU from it (grows with the machine's load). */
  involuntary: number;
}

/** The threads of a process now; threads that end meanwhile are left out. */
export function procThreads(pid: number): ProcThread[] {
  const threads: ProcThread[] = [];
  for (const e of Deno.readDirSync(`/proc/${pid}/task`)) {
    const dir = `/proc/${pid}/task/${e.name}`;
    try {
      const status = Deno.readTextFileSync(`${dir}/status`);
      const count = (name: string) =>
        Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1]);
      threads.push({
        tid: Number(e.name),
        name: Deno.readTextFileSync(`${dir}/comm`).trim(),
        cpuNs: Number(Deno.readTextFileSync(`${dir}/schedstat`).split(" ")[0]),
        voluntary: count("voluntary_ctxt_switches"),
        involuntary: count("nonvoluntary_ctxt_switches"),
      });
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return threads;
}

/** Clock ticks per second of /proc/<pid>/stat times (sysconf(_SC_CLK_TCK)). */
let clockTicks: number | null = null;

function ticksPerSecond(): number {
  if (clockTicks === null) {
    try {
      const out = new Deno.Command("getconf", { args: ["CLK_TCK"] }).outputSync();
      const n = Number(new TextDecoder().decode(out.stdout).trim());
      clockTicks = Number.isFinite(n) && n > 0 ? n : 100;
    } catch {
      clockTicks = 100; // the value on every Linux architecture Deno runs on
    }
  }
  return clockTicks;
}

/** CPU time (user + system) a process has used so far, in seconds, from /proc/<pid>/stat. */
export function procCpuSeconds(pid: number): number {
  const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // The command name (field 2) is in parentheses and may hold spaces: count after it.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // Fields 14 (utime) and 15 (stime) of proc(5); fields[0] is field 3 (state).
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  return (utime + stime) / ticksPerSecond();
}

// ---- MQTT ----

/** One message a {@link Subscriber} received. */
export interface Message {
  topic: string;
  payload: string;
  retain: boolean;
  /** Arrival time, performance.now(). */
  at: number;
}

export interface SubscriberOptions {
  /** Topic filter (default `#`). */
  topic?: string;
  username?: string;
  password?: string;
  /** Keep the message in {@link Subscriber.messages} (default: keep all). */
  keep?: (topic: string) => boolean;
  /** Called for every message, kept or not. */
  onMessage?: (m: Message) => void;
}

/** An MQTT client that records what it receives on a topic filter. */
export class Subscriber implements AsyncDisposable {
  readonly messages: Message[] = [];
  /** Messages received per topic, kept or not. */
  readonly counts: Map<string, number> = new Map();

  private constructor(private readonly client: MqttClient) {}

  static async open(port: number, opts: SubscriberOptions = {}): Promise<Subscriber> {
    const client = await mqtt.connectAsync({
      host: "127.0.0.1",
      port,
      reconnectPeriod: 0,
      clientId: `e2e-watcher-${crypto.randomUUID()}`,
      ...(opts.username === undefined ? {} : { username: opts.username }),
      ...(opts.password === undefined ? {} : { password: opts.password }),
    });
    const s = new Subscriber(client);
    client.on("error", () => {});
    client.on("message", (topic, payload, packet) => {
      const m = {
        topic,
        payload: payload.toString(),
        retain: packet.retain,
        at: performance.now(),
      };
      s.counts.set(topic, (s.counts.get(topic) ?? 0) + 1);
      if (opts.keep === undefined || opts.keep(topic)) s.messages.push(m);
      opts.onMessage?.(m);
    });
    await client.subscribeAsync(opts.topic ?? "#", { qos: 1 });
    return s;
  }

  /** The kept messages of `topic`, in arrival order. */
  on(topic: string): Message[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  /** Waits until `topic` has more than `after` messages; resolves message number `after`. */
  async next(topic: string, after = 0, timeoutMs = 10_000): Promise<Message> {
    await waitUntil(
      () => this.on(topic).length > after,
      `message ${after + 1} on ${topic}`,
      timeoutMs,
    );
    return this.on(topic)[after]!;
  }

  /** Waits for a message on `topic` for which `pred` holds; resolves it. */
  async waitFor(
    topic: string,
    pred: (m: Message) => boolean,
    what: string,
    timeoutMs = 10_000,
  ): Promise<Message> {
    let found: Message | undefined;
    await waitUntil(
      () => {
        found = this.on(topic).find(pred);
        return found !== undefined;
      },
      what,
      timeoutMs,
    );
    return found!;
  }

  async close(): Promise<void> {
    await this.client.endAsync().catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The retained message of `topic` as a new subscriber gets it, or null. */
export async function retainedMessage(
  port: number,
  topic: string,
  auth: { username?: string; password?: string } = {},
): Promise<Message | null> {
  const s = await Subscriber.open(port, { topic, ...auth });
  try {
    await waitUntil(() => s.messages.length > 0, `retained ${topic}`, 1_500).catch(() => {});
    const m = s.messages[0] ?? null;
    return m !== null && m.retain ? m : null;
  } finally {
    await s.close();
  }
}

/**
 * How far a process has read into the file at `path` (the `pos` of its descriptor in
 * /proc/<pid>/fdinfo), or null when it does not have the file open.
 */
export function procFilePosition(pid: number, path: string): number | null {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(`/proc/${pid}/fd`)];
  } catch {
    return null;
  }
  for (const e of entries) {
    try {
      if (Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`) !== path) continue;
      const info = Deno.readTextFileSync(`/proc/${pid}/fdinfo/${e.name}`);
      const m = /^pos:\s+(\d+)/m.exec(info);
      if (m) return Number(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  return null;
}

/**
 * A pseudo-terminal behind a symlink, like /dev/serial/by-id/usb-...: `unplug()` closes
 * the master (the reader's port fails with EIO) and removes the symlink, `replug()` opens
 * a new pair and creates the symlink again, pointing at it.
 */
export class PtyMeter {
  #pty: PseudoTerminal | null;

  private constructor(pty: PseudoTerminal, readonly link: string) {
    this.#pty = pty;
  }

  static async open(dir: string): Promise<PtyMeter> {
    const pty = PseudoTerminal.open();
    const link = `${dir}/usb-smartmeter-if00-port0`;
    await Deno.symlink(pty.path, link);
    return new PtyMeter(pty, link);
  }

  /** Writes to the current pseudo-terminal; false while unplugged. */
  write = async (bytes: Uint8Array): Promise<boolean> => {
    const pty = this.#pty;
    if (pty === null || pty.closed) return false;
    try {
      return (await pty.write(bytes, 2_000)) === bytes.length;
    } catch {
      return false;
    }
  };

  /**
   * Closes the master and, as udev does, removes the symlink: the pts number is free for
   * the next pseudo-terminal of any process, and a symlink left behind would lead there.
   */
  async unplug(): Promise<void> {
    const pty = this.#pty;
    this.#pty = null;
    await Deno.remove(this.link).catch(() => {});
    pty?.close();
    await pty?.whenIdle();
  }

  async replug(): Promise<void> {
    const pty = PseudoTerminal.open();
    // Create the symlink atomically, as udev does.
    const tmp = `${this.link}.new`;
    await Deno.symlink(pty.path, tmp);
    await Deno.rename(tmp, this.link);
    this.#pty = pty;
  }

  async close(): Promise<void> {
    await this.unplug();
  }
}
