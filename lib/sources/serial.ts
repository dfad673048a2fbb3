/**
 * A serial port (the meter's IR head or M-Bus/P1 adapter on `/dev/ttyUSB0`), opened raw
 * through termios, read and written without blocking the event loop.
 *
 * ```
 *   open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
 *   ioctl(TIOCGEXCL)      already held exclusive by someone else? → EBUSY
 *   tcgetattr → cfmakeraw → cfset[io]speed → CSIZE, PARENB/PARODD, CSTOPB, CLOCAL|CREAD,
 *     no RTS/CTS or XON/XOFF, VMIN=1 VTIME=0 → tcsetattr(TCSANOW)
 *   ioctl(TIOCEXCL)       later opens fail with EBUSY; close() undoes it (TIOCNXCL)
 *   tcflush(TCIFLUSH)     drop bytes that arrived before
 *   read: read(2) until EAGAIN, then one poll(2) off the event loop on the port and a
 *     wake pipe: idle, it sleeps; close() or an abort wakes it through the pipe at once;
 *     readable() pauses 200 ms after a read that got bytes, so a slow line is read in
 *     a few chunks, not one per USB packet
 * ```
 *
 * Unplugging a USB adapter (or closing a pseudo-terminal's master) makes read(2) fail
 * with EIO: {@link SerialPort.read} throws a {@link SerialError} with code `"EIO"`, and
 * {@link SerialPort.readable} errors its stream with it. Reopen to reconnect.
 *
 * Root gets past TIOCEXCL (the kernel lets CAP_SYS_ADMIN through), so open() also reads
 * the flag back (TIOCGEXCL) and refuses a port another program holds exclusive, and a
 * second open from this process is refused by path. A mark no other process stands behind
 * (a reader killed on a pseudo-terminal whose other side stays open) is cleared; a port
 * in use is refused naming the processes that have it (`holders.ts`).
 *
 * Note: a pseudo-terminal keeps the speed and stop bits it is given but forces CS8 and
 * clears PARENB (Linux `pty_set_termios`); {@link SerialPort.settings} reports what the
 * kernel kept.
 *
 * @module
 */

import {
  check,
  CLOCAL,
  CMSPAR,
  CREAD,
  CRTSCTS,
  CS5,
  CS6,
  CS7,
  CS8,
  CSIZE,
  CSTOPB,
  cString,
  EINVAL,
  errno,
  ErrnoError,
  errnoName,
  IXANY,
  IXOFF,
  libc,
  NonBlockingFd,
  O_CLOEXEC,
  O_NOCTTY,
  O_NONBLOCK,
  O_RDWR,
  PARENB,
  PARODD,
  speedFromLibc,
  speedToLibc,
  TCIFLUSH,
  TCSANOW,
  Termios,
  TIOCEXCL,
  TIOCGEXCL,
  TIOCNXCL,
  VMIN,
  VTIME,
} from "./libc.ts";
import { BAUD_RATES } from "./baud.ts";
import { describeHolders, deviceHolders, type Holders } from "./holders.ts";
import { sleep } from "./source.ts";

/** Parity as configured (`dlms.parity`: NONE, EVEN, ODD). */
export type Parity = "none" | "even" | "odd";

/** How to open a serial port. */
export interface SerialOptions {
  /** Device path, such as `/dev/ttyUSB0` or `/dev/serial/by-id/...`. */
  path: string;
  /** One of {@link SUPPORTED_BAUD_RATES}. */
  baudRate: number;
  dataBits: 7 | 8;
  parity: Parity;
  stopBits: 1 | 2;
  /** Refuse other openers while open (TIOCEXCL). Default true. */
  exclusive?: boolean;
}

/** Line settings as the kernel holds them. */
export interface SerialSettings {
  baudRate: number;
  dataBits: number;
  parity: Parity | "mark" | "space";
  stopBits: number;
}

/** The baud rates {@link SerialPort.open} accepts, slowest first: the config's list. */
export const SUPPORTED_BAUD_RATES: readonly number[] = BAUD_RATES;
/**
 * How long one read inside {@link SerialPort.readable}'s loop waits. Abort, cancel and
 * close() wake it at once, and a hang-up ends it, so this is no reaction time: only how
 * often an idle stream goes round its loop.
 */
const STREAM_READ_MS = 60_000;
const DEFAULT_CHUNK_SIZE = 4096;
/**
 * After a read that got bytes, {@link SerialPort.readable} lets the next ones gather this
 * long before it reads again. A USB serial adapter passes a slow line on a few bytes per
 * packet (an FTDI chip every 16 ms: 4 bytes at 2400 baud), and each packet would otherwise
 * wake the process: 71 reads for one push of 282 bytes, instead of 7. It delays a push's
 * last bytes by at most this, against the 0.3–1.2 s the push takes on the wire at
 * 9600–2400 baud and the framer's 1 s silence gap; a push after an idle line is read as
 * soon as it comes. Measured at one push every 5 s at 2400 baud (scripts/measure.ts
 * --baud 2400): 44 wake-ups/s and 0.48 % of a core without the pause; 6.7 and 0.16 % with
 * 100 ms; 4.4 and 0.11 % with 200 ms; 3.7 and 0.10 % with 300 ms.
 */
export const READ_COALESCE_MS = 200;
/**
 * Lines this fast or faster are read as the bytes come: an adapter then passes at least
 * 16 bytes a packet (about 8 reads for a 120-byte push at 9600 baud), and 9600 is the IR
 * heads' speed, where a Netz OÖ AMIS meter needs its answer within milliseconds of a
 * frame's last byte.
 */
export const COALESCE_BELOW_BAUD = 9600;

/**
 * The message a user sees for a failing serial port: what failed, then what to do.
 * `code` is an errno name (`"ENOENT"`, `"EACCES"`, ...) or `"EINVAL"` for bad options.
 */
export function serialErrorMessage(code: string, path: string, detail?: string): string {
  switch (code) {
    case "ENOENT":
    case "ENODEV":
    case "ENXIO":
      return `No such device ${path}: is the IR head plugged in? ls /dev/serial/by-id`;
    case "EACCES":
    case "EPERM":
      return `Permission denied on ${path}: add the user to the dialout group ` +
        `(sudo usermod -aG dialout $USER) or, under systemd, SupplementaryGroups=dialout`;
    case "EBUSY":
      return detail ?? `${path} is in use by another program: fuser -v ${path} shows which`;
    case "EIO":
      return `Serial port ${path} stopped working: the device was unplugged or lost power`;
    case "ENOTTY":
      return `Not a serial port: ${path} does not take terminal settings`;
    case "EBADF":
      return `Serial port ${path} is closed`;
    case "EINVAL":
      return `Invalid serial settings for ${path}: ${detail ?? "rejected by the driver"}`;
    default:
      return `Serial port ${path} failed: ${detail ?? code}`;
  }
}

/** A serial port failure, with the errno name as `code` and a message meant for users. */
export class SerialError extends Error {
  override name = "SerialError";
  /** errno name: `"ENOENT"`, `"EACCES"`, `"EBUSY"`, `"EIO"`, `"EINVAL"`, ... */
  readonly code: string;
  /** The device path. */
  readonly path: string;

  constructor(code: string, path: string, detail?: string, options?: ErrorOptions) {
    super(serialErrorMessage(code, path, detail), options);
    this.code = code;
    this.path = path;
  }
}

/** Wraps a failed C call as a {@link SerialError} for `path`. */
function fromErrno(e: unknown, path: string): unknown {
  if (e instanceof ErrnoError) return new SerialError(e.code, path, e.message, { cause: e });
  return e;
}

/** Throws a {@link SerialError} (code EINVAL) unless `opts` can be applied. */
export function validateSerialOptions(opts: SerialOptions): void {
  const bad = (detail: string) => new SerialError("EINVAL", opts.path, detail);
  if (!SUPPORTED_BAUD_RATES.includes(opts.baudRate)) {
    throw bad(
      `baud rate "${opts.baudRate}" is not supported: use one of ${
        SUPPORTED_BAUD_RATES.join(", ")
      }`,
    );
  }
  if (opts.dataBits !== 7 && opts.dataBits !== 8) {
    throw bad(`data bits "${opts.dataBits}" is not supported: use 7 or 8`);
  }
  if (opts.parity !== "none" && opts.parity !== "even" && opts.parity !== "odd") {
    throw bad(`parity "${opts.parity}" is not supported: use none, even or odd`);
  }
  if (opts.stopBits !== 1 && opts.stopBits !== 2) {
    throw bad(`stop bits "${opts.stopBits}" is not supported: use 1 or 2`);
  }
}

/**
 * Puts `t` in raw mode with the line settings of `opts` (through libc's cfmakeraw and
 * cfset*speed, plus the c_cflag bits): no echo, no line editing, no flow control,
 * receiver on, modem lines ignored, a read returns as soon as one byte is there.
 */
export function applySerialOptions(t: Termios, opts: SerialOptions): void {
  const speed = speedToLibc(opts.baudRate);
  if (speed === undefined) throw new SerialError("EINVAL", opts.path, "no such baud rate");
  const c = libc();
  c.cfmakeraw(t.bytes);
  if (c.cfsetispeed(t.bytes, speed) !== 0 || c.cfsetospeed(t.bytes, speed) !== 0) {
    throw new SerialError("EINVAL", opts.path, `libc refused baud rate "${opts.baudRate}"`);
  }
  t.iflag &= ~(IXOFF | IXANY);
  let cflag = t.cflag & ~(CSIZE | PARENB | PARODD | CMSPAR | CSTOPB | CRTSCTS);
  cflag |= (opts.dataBits === 7 ? CS7 : CS8) | CLOCAL | CREAD;
  if (opts.parity !== "none") cflag |= PARENB;
  if (opts.parity === "odd") cflag |= PARODD;
  if (opts.stopBits === 2) cflag |= CSTOPB;
  t.cflag = cflag;
  t.setCc(VMIN, 1);
  t.setCc(VTIME, 0);
}

/** The line settings held in `t`. */
export function decodeSettings(t: Termios): SerialSettings {
  const cflag = t.cflag;
  const size = cflag & CSIZE;
  const dataBits = size === CS5 ? 5 : size === CS6 ? 6 : size === CS7 ? 7 : 8;
  let parity: SerialSettings["parity"] = "none";
  if (cflag & PARENB) {
    const odd = (cflag & PARODD) !== 0;
    if (cflag & CMSPAR) parity = odd ? "mark" : "space";
    else parity = odd ? "odd" : "even";
  }
  const baudRate = speedFromLibc(libc().cfgetospeed(t.bytes)) ?? -1;
  return { baudRate, dataBits, parity, stopBits: cflag & CSTOPB ? 2 : 1 };
}

/** Paths this process holds open, to refuse a second open even as root. */
const openPaths = new Set<string>();

function canonicalPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

/** An open serial port. */
export class SerialPort {
  readonly #io: NonBlockingFd;
  readonly #key: string;
  #opts: SerialOptions;

  private constructor(fd: number, key: string, opts: SerialOptions) {
    this.#io = new NonBlockingFd(fd);
    this.#key = key;
    this.#opts = opts;
  }

  /**
   * Opens and configures the port. Throws {@link SerialError}: ENOENT (not plugged in),
   * EACCES (not in the dialout group), EBUSY (in use), ENOTTY (not a tty), EINVAL.
   */
  static open(opts: SerialOptions): SerialPort {
    const options = { exclusive: true, ...opts };
    validateSerialOptions(options);
    const key = canonicalPath(options.path);
    if (options.exclusive && openPaths.has(key)) throw new SerialError("EBUSY", options.path);
    const c = libc();
    const fd = c.open(cString(options.path), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0);
    if (fd < 0) {
      const code = errnoName(errno());
      const detail = code === "EBUSY" ? busyMessage(options.path) : undefined;
      throw new SerialError(code, options.path, detail);
    }
    let port: SerialPort;
    let exclusiveSet = false;
    try {
      // Root gets past another program's TIOCEXCL: look at the flag before touching it. A
      // mark no other process stands behind was left by a reader that died: clear it.
      if (options.exclusive && exclusiveFlag(fd) === true) {
        const holders = deviceHolders(options.path);
        if (holders.readers.length > 0 || !holders.complete) {
          throw new SerialError("EBUSY", options.path, busyMessage(options.path, holders));
        }
        check("ioctl(TIOCNXCL)", c.ioctl(fd, BigInt(TIOCNXCL), 0n));
      }
      configure(fd, options);
      if (options.exclusive) {
        check("ioctl(TIOCEXCL)", c.ioctl(fd, BigInt(TIOCEXCL), 0n));
        exclusiveSet = true;
      }
      check("tcflush", c.tcflush(fd, TCIFLUSH));
      port = new SerialPort(fd, key, options); // its wake pipe may fail (EMFILE)
    } catch (e) {
      // The flag outlives this descriptor while another one holds the tty open.
      if (exclusiveSet) c.ioctl(fd, BigInt(TIOCNXCL), 0n);
      c.close(fd);
      throw fromErrno(e, options.path);
    }
    if (options.exclusive) openPaths.add(key);
    return port;
  }

  /** The device path. */
  get path(): string {
    return this.#opts.path;
  }

  get closed(): boolean {
    return this.#io.closed;
  }

  /** The options last applied (what was asked for; see {@link settings} for the kernel's). */
  get options(): Readonly<SerialOptions> {
    return this.#opts;
  }

  /**
   * Reads into `buf`, waiting up to `timeoutMs` for the first byte; resolves the byte
   * count, 0 on timeout or abort. Throws {@link SerialError} EIO when the device is gone,
   * EBADF after {@link close}.
   */
  async read(buf: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<number> {
    try {
      return await this.#io.read(buf, timeoutMs, signal);
    } catch (e) {
      throw fromErrno(e, this.path);
    }
  }

  /** Writes all of `data` (waiting up to `timeoutMs` for room); resolves bytes written. */
  async write(data: Uint8Array, timeoutMs = Infinity): Promise<number> {
    try {
      return await this.#io.write(data, timeoutMs);
    } catch (e) {
      throw fromErrno(e, this.path);
    }
  }

  /** The line settings as the kernel holds them, read back with tcgetattr. */
  settings(): SerialSettings {
    const t = new Termios();
    try {
      check("tcgetattr", libc().tcgetattr(this.#fd(), t.bytes));
    } catch (e) {
      throw fromErrno(e, this.path);
    }
    return decodeSettings(t);
  }

  /**
   * Whether the kernel holds the port exclusive (TIOCGEXCL); undefined where that ioctl
   * is not available (Linux before 3.8, some emulators).
   */
  isExclusive(): boolean | undefined {
    return exclusiveFlag(this.#fd());
  }

  /**
   * Applies new line settings (the `baudrate: auto` probe steps through them) and drops
   * input received under the old ones.
   */
  reconfigure(opts: Partial<SerialOptions>): void {
    const next: SerialOptions = { ...this.#opts, ...opts, path: this.#opts.path };
    validateSerialOptions(next);
    const fd = this.#fd();
    const c = libc();
    try {
      configure(fd, next);
      if (next.exclusive !== this.#opts.exclusive) {
        check("ioctl", c.ioctl(fd, BigInt(next.exclusive ? TIOCEXCL : TIOCNXCL), 0n));
        if (next.exclusive) openPaths.add(this.#key);
        else openPaths.delete(this.#key);
      }
      check("tcflush", c.tcflush(fd, TCIFLUSH));
    } catch (e) {
      throw fromErrno(e, this.path);
    }
    this.#opts = next;
  }

  /**
   * Closes the port (idempotent). A read in progress is woken and rejects with EBADF at
   * once; {@link whenIdle} tells when its poll(2) has returned.
   */
  close(): void {
    if (this.#io.closed) return;
    // The flag outlives this descriptor while another one holds the tty open.
    if (this.#opts.exclusive) libc().ioctl(this.#io.fd, BigInt(TIOCNXCL), 0n);
    this.#io.close();
    if (this.#opts.exclusive) openPaths.delete(this.#key);
  }

  /** Resolves once no read or write of this port is waiting in poll(2). */
  whenIdle(): Promise<void> {
    return this.#io.whenIdle();
  }

  /**
   * The port as a stream of byte chunks. The stream closes when `signal` aborts or the
   * port is closed, and errors with a {@link SerialError} (EIO) when the device goes
   * away. Cancelling the stream leaves the port open. After a read that got bytes, the
   * next waits `coalesceMs` for more to gather (default: {@link READ_COALESCE_MS} below
   * {@link COALESCE_BELOW_BAUD}, else 0).
   */
  readable(
    opts: { chunkSize?: number; signal?: AbortSignal; coalesceMs?: number } = {},
  ): ReadableStream<Uint8Array> {
    const size = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    const coalesceMs = opts.coalesceMs ??
      (this.#opts.baudRate < COALESCE_BELOW_BAUD ? READ_COALESCE_MS : 0);
    let gatherUntil = 0;
    const stop = new AbortController(); // cancel(): wake a waiting read at once
    const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
    let pending: Promise<unknown> = Promise.resolve();
    let cancelled = false;
    return new ReadableStream<Uint8Array>({
      pull: (controller) => {
        const step = async () => {
          const buf = new Uint8Array(size);
          const gather = gatherUntil - performance.now();
          if (gather > 0) await sleep(gather, signal);
          while (!cancelled) {
            if (signal.aborted || this.closed) return controller.close();
            let n: number;
            try {
              n = await this.read(buf, STREAM_READ_MS, signal);
            } catch (e) {
              if (e instanceof SerialError && e.code === "EBADF") return controller.close();
              return controller.error(e);
            }
            if (n > 0 && !cancelled) {
              gatherUntil = performance.now() + coalesceMs;
              return controller.enqueue(buf.slice(0, n));
            }
          }
        };
        pending = step();
        return pending.then(() => {});
      },
      cancel: async () => {
        cancelled = true;
        stop.abort();
        await pending.catch(() => {});
      },
    }, new CountQueuingStrategy({ highWaterMark: 0 }));
  }

  #fd(): number {
    if (this.#io.closed) throw new SerialError("EBADF", this.path);
    return this.#io.fd;
  }
}

/**
 * Why an exclusive port cannot be opened: the programs that have it open, or, when none
 * can be seen, what a stale mark on a pseudo-terminal is and how to get rid of it.
 */
function busyMessage(path: string, holders: Holders = deviceHolders(path)): string {
  if (holders.readers.length > 0) {
    return `${path} is in use by another program (${
      describeHolders(holders.readers)
    }): stop it, or see fuser -v ${path}`;
  }
  const creator = holders.creators.length > 0
    ? ` (it was created by ${describeHolders(holders.creators)})`
    : "";
  const stale = "a reader that ended without closing it left the mark, which a " +
    "pseudo-terminal keeps while its other side is open";
  if (holders.complete) {
    return `${path} is marked for exclusive use (TIOCEXCL) but no other program has it ` +
      `open: ${stale}${creator}: restart the program that created it`;
  }
  return `${path} is marked for exclusive use (TIOCEXCL): another program has it open, or ` +
    `${stale}${creator}: fuser -v ${path} shows a program that has it; if none does, ` +
    "restart the program that created the pseudo-terminal";
}

/** The tty's exclusive flag (TIOCGEXCL); undefined where the ioctl is missing. */
function exclusiveFlag(fd: number): boolean | undefined {
  const flag = new Uint8Array(4);
  if (libc().ioctlOut(fd, BigInt(TIOCGEXCL), flag) !== 0) return undefined;
  return new Int32Array(flag.buffer)[0] !== 0;
}

/** tcgetattr, raw mode and line settings, tcsetattr. */
function configure(fd: number, opts: SerialOptions): void {
  const c = libc();
  const t = new Termios();
  check("tcgetattr", c.tcgetattr(fd, t.bytes));
  applySerialOptions(t, opts);
  if (c.tcsetattr(fd, TCSANOW, t.bytes) === 0) return;
  const error = errno();
  // glibc reports EINVAL when the kernel silently dropped PARENB or CSIZE and nothing else
  // it was asked changed: a pseudo-terminal (which forces CS8 without parity) opened again
  // at the speed it already has. The first open, which changed the speed, kept what the
  // kernel allowed; so does this one.
  if (error === EINVAL && onlyCharacterFormatDropped(fd, t)) return;
  throw new ErrnoError("tcsetattr", error);
}

/** Whether the tty holds `wanted` except for the parity and character size bits. */
function onlyCharacterFormatDropped(fd: number, wanted: Termios): boolean {
  const got = new Termios();
  if (libc().tcgetattr(fd, got.bytes) !== 0) return false;
  const format = PARENB | PARODD | CMSPAR | CSIZE;
  return (got.cflag & ~format) === (wanted.cflag & ~format) && got.iflag === wanted.iflag;
}
