/**
 * A pseudo-terminal pair: a stand-in for a meter on a serial line, for tests, `demo` and
 * `simulate`.
 *
 * ```
 *   this side (master, /dev/ptmx)            the reader (slave, /dev/pts/N)
 *   write(frame)  ──────────────────────────▶ SerialPort.open({ path }) … read()
 *   read(buf)     ◀────────────────────────── SerialPort.write()
 *   close()       ── the reader's next read fails with EIO: an unplugged adapter
 * ```
 *
 * Opened with posix_openpt, grantpt, unlockpt and ptsname_r. This side keeps one
 * descriptor of the slave open itself, set to raw mode, so that the line starts raw (no
 * echo, no CR/LF translation) and so that a reader closing and reopening the port
 * (a reconnect) does not hang up this side. Bytes written while no reader is attached
 * wait in the line; {@link SerialPort.open} flushes them.
 *
 * @module
 */

import {
  check,
  CLOCAL,
  CREAD,
  cString,
  errno,
  ErrnoError,
  fromCString,
  libc,
  NonBlockingFd,
  O_CLOEXEC,
  O_NOCTTY,
  O_NONBLOCK,
  O_RDWR,
  TCSANOW,
  Termios,
  VMIN,
  VTIME,
} from "./libc.ts";
import { SerialError } from "./serial.ts";

const MASTER_PATH = "/dev/ptmx";
const PTS_NAME_SIZE = 128;
const OPEN_FLAGS = O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC;

/** The master side of a new pseudo-terminal; {@link path} is the slave to hand out. */
export class PseudoTerminal {
  /** The slave device, `/dev/pts/N`: open it as a {@link SerialPort}. */
  readonly path: string;
  readonly #master: NonBlockingFd;
  #keeper: number;

  private constructor(master: number, keeper: number, path: string) {
    this.#master = new NonBlockingFd(master);
    this.#keeper = keeper;
    this.path = path;
  }

  /** Opens a new pair. Throws {@link SerialError} when /dev/ptmx cannot be used. */
  static open(): PseudoTerminal {
    const c = libc();
    const master = c.posix_openpt(OPEN_FLAGS);
    if (master < 0) throw wrap(new ErrnoError("posix_openpt", errno()), MASTER_PATH);
    let keeper = -1;
    try {
      check("grantpt", c.grantpt(master));
      check("unlockpt", c.unlockpt(master));
      const name = new Uint8Array(PTS_NAME_SIZE);
      const failed = c.ptsname_r(master, name, BigInt(name.length));
      if (failed !== 0) throw new ErrnoError("ptsname_r", failed);
      const path = fromCString(name);
      keeper = check("open", c.open(cString(path), OPEN_FLAGS, 0));
      const t = new Termios();
      check("tcgetattr", c.tcgetattr(keeper, t.bytes));
      c.cfmakeraw(t.bytes);
      t.cflag |= CLOCAL | CREAD;
      t.setCc(VMIN, 1);
      t.setCc(VTIME, 0);
      check("tcsetattr", c.tcsetattr(keeper, TCSANOW, t.bytes));
      return new PseudoTerminal(master, keeper, path);
    } catch (e) {
      if (keeper >= 0) c.close(keeper);
      c.close(master);
      throw wrap(e, MASTER_PATH);
    }
  }

  get closed(): boolean {
    return this.#master.closed;
  }

  /**
   * Sends bytes to the reader, waiting up to `timeoutMs` for room; resolves the count
   * written (short only on timeout).
   */
  async write(data: Uint8Array, timeoutMs = Infinity): Promise<number> {
    try {
      return await this.#master.write(data, timeoutMs);
    } catch (e) {
      throw wrap(e, this.path);
    }
  }

  /** Receives what the reader wrote, waiting up to `timeoutMs`; 0 on timeout. */
  async read(buf: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<number> {
    try {
      return await this.#master.read(buf, timeoutMs, signal);
    } catch (e) {
      throw wrap(e, this.path);
    }
  }

  /** Closes both descriptors: the reader's port then reports EIO (idempotent). */
  close(): void {
    this.#master.close();
    if (this.#keeper >= 0) {
      libc().close(this.#keeper);
      this.#keeper = -1;
    }
  }

  /** Resolves once no read or write of this side is waiting in poll(2). */
  whenIdle(): Promise<void> {
    return this.#master.whenIdle();
  }
}

function wrap(e: unknown, path: string): unknown {
  if (e instanceof ErrnoError) return new SerialError(e.code, path, e.message, { cause: e });
  return e;
}
