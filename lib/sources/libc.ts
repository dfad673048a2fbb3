/**
 * The C library, reached through `Deno.dlopen`: the few calls a serial port and a
 * pseudo-terminal need, the Linux constants they take, the `struct termios` layout, and
 * errno.
 *
 * npm `serialport` does not run under Deno and `Deno.open` cannot set terminal modes, so
 * the serial source talks to glibc (or musl) directly. The library is opened lazily, on
 * first use, so importing this module needs no `--allow-ffi`.
 *
 * ## Layout of glibc's `struct termios` (x86-64 and aarch64, 60 bytes)
 *
 * ```
 *  offset  size  field
 *   0      4     c_iflag    input modes          (tcflag_t = unsigned int)
 *   4      4     c_oflag    output modes
 *   8      4     c_cflag    control modes: CBAUD, CSIZE, CSTOPB, PARENB, PARODD, CREAD, CLOCAL
 *  12      4     c_lflag    local modes
 *  16      1     c_line     line discipline
 *  17     32     c_cc[32]   control characters: c_cc[VTIME] at 17+5, c_cc[VMIN] at 17+6
 *  49      3     (padding)
 *  52      4     c_ispeed   input speed  (speed_t)
 *  56      4     c_ospeed   output speed
 * ```
 *
 * Only `c_iflag`, `c_cflag` and `c_cc[VMIN]`/`c_cc[VTIME]` are touched here; speeds go
 * through `cfsetispeed`/`cfsetospeed`/`cfgetospeed` and raw mode through `cfmakeraw`. The
 * buffer is {@link TERMIOS_BUFFER_SIZE} bytes, more than the struct, as slack.
 *
 * ## Constants
 *
 * Every constant below is identical on x86-64 and aarch64 Linux: both architectures take
 * `termbits.h`, `ioctls.h`, `errno-base.h` and `poll.h` from the kernel's asm-generic
 * headers, and arm64's own `fcntl.h` only redefines O_DIRECTORY, O_NOFOLLOW, O_DIRECT and
 * O_LARGEFILE. glibc's aarch64 port keeps the generic Linux `bits/termios-*.h`. The values
 * were printed by a C program compiled here (x86-64) and read from those headers for
 * aarch64. Other architectures (alpha, mips, powerpc, sparc) differ, hence
 * {@link assertSupportedPlatform}.
 *
 * ## Speeds: two glibc ABIs
 *
 * Up to glibc 2.41, `speed_t` holds a CBAUD code (`B9600` = 0o15). From glibc 2.42, the
 * default-version `cfsetospeed` that `dlsym` returns takes and `cfgetospeed` returns the
 * plain number (9600). {@link speedToLibc} and {@link speedFromLibc} find out once, by
 * asking `cfsetospeed` to take 9600: the old ABI refuses it with EINVAL.
 *
 * @module
 */

// ---------------------------------------------------------------------------------------
// Constants (Linux, asm-generic values; identical on x86-64 and aarch64)

/** open(2) flags. */
export const O_RDWR = 0o2;
export const O_NOCTTY = 0o400;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

/** c_iflag bits that `cfmakeraw` leaves set: software flow control would eat 0x11/0x13. */
export const IXANY = 0o4000;
export const IXOFF = 0o10000;

/** c_cflag bits. */
export const CBAUD = 0o10017;
export const CSIZE = 0o60;
export const CS5 = 0o0;
export const CS6 = 0o20;
export const CS7 = 0o40;
export const CS8 = 0o60;
export const CSTOPB = 0o100;
export const CREAD = 0o200;
export const PARENB = 0o400;
export const PARODD = 0o1000;
export const CLOCAL = 0o4000;
export const CMSPAR = 0o10000000000;
export const CRTSCTS = 0o20000000000;

/** CBAUD codes, as stored in c_cflag and taken by the pre-2.42 glibc speed functions. */
export const BAUD_CODES: ReadonlyMap<number, number> = new Map([
  [0, 0o0],
  [50, 0o1],
  [75, 0o2],
  [110, 0o3],
  [134, 0o4],
  [150, 0o5],
  [200, 0o6],
  [300, 0o7],
  [600, 0o10],
  [1200, 0o11],
  [1800, 0o12],
  [2400, 0o13],
  [4800, 0o14],
  [9600, 0o15],
  [19200, 0o16],
  [38400, 0o17],
  [57600, 0o10001],
  [115200, 0o10002],
  [230400, 0o10003],
  [460800, 0o10004],
]);

/** tcsetattr(3) and tcflush(3) selectors. */
export const TCSANOW = 0;
export const TCIFLUSH = 0;
export const TCIOFLUSH = 2;

/** Indexes into c_cc. */
export const VTIME = 5;
export const VMIN = 6;

/** ioctl(2) requests (asm-generic/ioctls.h). */
export const TIOCEXCL = 0x540c;
export const TIOCNXCL = 0x540d;
/** `_IOR('T', 0x40, int)`: reads the exclusive flag (Linux 3.8+). */
export const TIOCGEXCL = 0x80045440;

/** poll(2) events (asm-generic/poll.h). */
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;

/** errno values (asm-generic/errno-base.h) and their names. */
export const ERRNO_NAMES: ReadonlyMap<number, string> = new Map([
  [1, "EPERM"],
  [2, "ENOENT"],
  [4, "EINTR"],
  [5, "EIO"],
  [6, "ENXIO"],
  [9, "EBADF"],
  [11, "EAGAIN"],
  [12, "ENOMEM"],
  [13, "EACCES"],
  [16, "EBUSY"],
  [19, "ENODEV"],
  [20, "ENOTDIR"],
  [21, "EISDIR"],
  [22, "EINVAL"],
  [24, "EMFILE"],
  [25, "ENOTTY"],
  [30, "EROFS"],
  [36, "ENAMETOOLONG"],
  [40, "ELOOP"],
]);
export const EINTR = 4;
export const EIO = 5;
export const EBADF = 9;
export const EAGAIN = 11;
export const EINVAL = 22;

// ---------------------------------------------------------------------------------------
// struct termios and struct pollfd

/** Bytes allocated for a `struct termios` (60 on glibc and musl; the rest is slack). */
export const TERMIOS_BUFFER_SIZE = 64;
const TERMIOS_C_IFLAG = 0;
const TERMIOS_C_CFLAG = 8;
const TERMIOS_C_CC = 17;

/** `struct pollfd { int fd; short events; short revents; }`: 8 bytes. */
const POLLFD_SIZE = 8;
const POLLFD_FD_INDEX = 0; // in 32-bit units
const POLLFD_EVENTS_INDEX = 2; // in 16-bit units
const POLLFD_REVENTS_INDEX = 3; // in 16-bit units

/**
 * A `struct termios` in memory. The flags are read in native byte order through a
 * `Uint32Array`, so the code does not care which endianness the machine has.
 */
export class Termios {
  readonly bytes = new Uint8Array(TERMIOS_BUFFER_SIZE);
  readonly #words = new Uint32Array(this.bytes.buffer);

  get iflag(): number {
    return this.#words[TERMIOS_C_IFLAG / 4]!;
  }
  set iflag(value: number) {
    this.#words[TERMIOS_C_IFLAG / 4] = value >>> 0;
  }
  get cflag(): number {
    return this.#words[TERMIOS_C_CFLAG / 4]!;
  }
  set cflag(value: number) {
    this.#words[TERMIOS_C_CFLAG / 4] = value >>> 0;
  }
  /** One control character, `c_cc[index]`. */
  cc(index: number): number {
    return this.bytes[TERMIOS_C_CC + index]!;
  }
  setCc(index: number, value: number): void {
    this.bytes[TERMIOS_C_CC + index] = value;
  }
}

// ---------------------------------------------------------------------------------------
// The library

const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** Off the event loop; only ever called with a bounded timeout. */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  /** The same poll(2), on this thread, so that errno can be read after it. */
  pollNow: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "u64"], result: "i32" },
  ioctlOut: { name: "ioctl", parameters: ["i32", "u64", "buffer"], result: "i32" },
  tcgetattr: { parameters: ["i32", "buffer"], result: "i32" },
  tcsetattr: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  tcflush: { parameters: ["i32", "i32"], result: "i32" },
  cfmakeraw: { parameters: ["buffer"], result: "void" },
  cfsetispeed: { parameters: ["buffer", "u32"], result: "i32" },
  cfsetospeed: { parameters: ["buffer", "u32"], result: "i32" },
  cfgetospeed: { parameters: ["buffer"], result: "u32" },
  posix_openpt: { parameters: ["i32"], result: "i32" },
  grantpt: { parameters: ["i32"], result: "i32" },
  unlockpt: { parameters: ["i32"], result: "i32" },
  ptsname_r: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The bound C functions. */
export type LibcSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let library: LibcSymbols | undefined;

/** Throws unless this is Linux on x86-64 or aarch64, where the constants above hold. */
export function assertSupportedPlatform(
  os: string = Deno.build.os,
  arch: string = Deno.build.arch,
): void {
  if (os !== "linux" || (arch !== "x86_64" && arch !== "aarch64")) {
    throw new Error(
      `Serial ports are not supported on ${os}/${arch}: only Linux on x86-64 and aarch64`,
    );
  }
}

/** The C library, opened on first use (needs `--allow-ffi`). */
export function libc(): LibcSymbols {
  if (library) return library;
  assertSupportedPlatform();
  const names = ["libc.so.6", `libc.musl-${Deno.build.arch}.so.1`];
  const failures: string[] = [];
  for (const name of names) {
    try {
      library = Deno.dlopen(name, SYMBOLS).symbols;
      return library;
    } catch (e) {
      failures.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  throw new Error(`Cannot load the C library: ${failures.join("; ")}`);
}

/** The calling thread's errno; read it right after the failed call. */
export function errno(): number {
  const where = libc().__errno_location();
  if (where === null) return 0;
  return new Deno.UnsafePointerView(where).getInt32(0);
}

/** Symbolic name of an errno value (`"ENOENT"`), or `"E<number>"` for rare ones. */
export function errnoName(value: number): string {
  return ERRNO_NAMES.get(value) ?? `E${value}`;
}

/** The C library's description of an errno value ("No such file or directory"). */
export function strerror(value: number): string {
  const text = libc().strerror(value);
  return text === null ? `error ${value}` : Deno.UnsafePointerView.getCString(text);
}

/** A failed C call: the errno, its name and the call that failed. */
export class ErrnoError extends Error {
  override name = "ErrnoError";
  /** The errno name, such as `"EIO"`. */
  readonly code: string;
  readonly errno: number;
  /** The C function that failed. */
  readonly call: string;

  constructor(call: string, value: number, detail?: string) {
    super(`${call}() failed: ${detail ?? strerror(value)} (${errnoName(value)})`);
    this.code = errnoName(value);
    this.errno = value;
    this.call = call;
  }
}

/** Throws an {@link ErrnoError} for `call` when a C call returned -1. */
export function check(call: string, result: number): number {
  if (result === -1) throw new ErrnoError(call, errno());
  return result;
}

/** A NUL-terminated copy of `text` for a `const char *` parameter. */
export function cString(text: string): Uint8Array {
  const encoded = new TextEncoder().encode(text);
  const out = new Uint8Array(encoded.length + 1);
  out.set(encoded);
  return out;
}

/** The string before the first NUL in `buffer`. */
export function fromCString(buffer: Uint8Array): string {
  const end = buffer.indexOf(0);
  return new TextDecoder().decode(end < 0 ? buffer : buffer.subarray(0, end));
}

// ---------------------------------------------------------------------------------------
// Speeds

let numericSpeeds: boolean | undefined;

/** Whether the loaded libc's speed functions take plain baud numbers (glibc 2.42+). */
export function libcTakesNumericSpeeds(): boolean {
  if (numericSpeeds === undefined) {
    const probe = new Termios();
    numericSpeeds = libc().cfsetospeed(probe.bytes, 9600) === 0;
  }
  return numericSpeeds;
}

/** The `speed_t` value this libc wants for `baud`; undefined when there is no B-code. */
export function speedToLibc(baud: number): number | undefined {
  const code = BAUD_CODES.get(baud);
  if (code === undefined) return undefined;
  return libcTakesNumericSpeeds() ? baud : code;
}

/** The baud rate a `speed_t` from this libc stands for; undefined when unknown. */
export function speedFromLibc(speed: number): number | undefined {
  if (libcTakesNumericSpeeds()) return speed;
  for (const [baud, code] of BAUD_CODES) if (code === speed) return baud;
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Non-blocking descriptor I/O

/** Longest single poll(2): how long close() or an abort may take to be noticed. */
export const POLL_SLICE_MS = 100;

/**
 * A file descriptor opened with O_NONBLOCK, read and written from JavaScript.
 *
 * Waiting happens in poll(2) calls of at most {@link POLL_SLICE_MS} off the event loop;
 * read(2) and write(2) run on this thread (they never block), so errno is the right one.
 * close() returns at once; a read or write in progress notices within one slice and
 * rejects with EBADF, and {@link whenIdle} resolves once no poll is left running.
 */
export class NonBlockingFd {
  #fd: number;
  #polls = 0;
  #idle: Promise<void> = Promise.resolve();
  #wake: (() => void) | undefined;

  constructor(fd: number) {
    this.#fd = fd;
  }

  /** The descriptor, or -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /**
   * Reads what is available into `buf`, waiting up to `timeoutMs` for the first byte.
   * Resolves 0 on timeout or when `signal` aborts. Throws {@link ErrnoError}: EIO on
   * hang-up (read(2) returned 0, or poll reported POLLHUP/POLLERR with nothing to read),
   * EBADF once closed.
   */
  async read(buf: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<number> {
    const deadline = performance.now() + Math.max(0, timeoutMs);
    for (;;) {
      const fd = this.#open("read");
      if (buf.length === 0) return 0;
      const n = Number(libc().read(fd, buf, BigInt(buf.length)));
      if (n > 0) return n;
      if (n === 0) throw new ErrnoError("read", EIO, "end of file: the other side hung up");
      const error = errno();
      if (error === EINTR) continue;
      if (error !== EAGAIN) throw new ErrnoError("read", error);
      const left = deadline - performance.now();
      if (left <= 0 || signal?.aborted) return 0;
      const revents = await this.#poll(POLLIN, left);
      if (revents & (POLLHUP | POLLERR) && !(revents & POLLIN)) {
        // Nothing to read and the line is gone: read(2) names the reason, else EIO.
        const last = Number(libc().read(this.#open("read"), buf, BigInt(buf.length)));
        if (last > 0) return last;
        const reason = last < 0 ? errno() : EIO;
        throw new ErrnoError("read", reason === EAGAIN ? EIO : reason, "hang-up");
      }
    }
  }

  /**
   * Writes all of `data`, waiting for room as long as `timeoutMs` allows. Resolves the
   * number of bytes written (fewer than `data.length` only on timeout or abort).
   */
  async write(data: Uint8Array, timeoutMs = Infinity, signal?: AbortSignal): Promise<number> {
    const deadline = performance.now() + Math.max(0, timeoutMs);
    let written = 0;
    while (written < data.length) {
      const fd = this.#open("write");
      const rest = data.subarray(written);
      const n = Number(libc().write(fd, rest, BigInt(rest.length)));
      if (n > 0) {
        written += n;
        continue;
      }
      const error = n < 0 ? errno() : EAGAIN;
      if (error === EINTR) continue;
      if (error !== EAGAIN) throw new ErrnoError("write", error);
      const left = deadline - performance.now();
      if (left <= 0 || signal?.aborted) break;
      const revents = await this.#poll(POLLOUT, left);
      if (revents & (POLLHUP | POLLERR) && !(revents & POLLOUT)) {
        throw new ErrnoError("write", EIO, "hang-up");
      }
    }
    return written;
  }

  /** Closes the descriptor (idempotent). Pending reads and writes reject with EBADF. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    libc().close(fd);
  }

  /** Resolves once no poll(2) started by this object is still running. */
  whenIdle(): Promise<void> {
    return this.#idle;
  }

  #open(call: string): number {
    if (this.#fd < 0) throw new ErrnoError(call, EBADF, "the descriptor was closed");
    return this.#fd;
  }

  /** One bounded poll(2) for `events`; returns revents (0 on timeout). */
  async #poll(events: number, timeoutMs: number): Promise<number> {
    const fd = this.#open("poll");
    const pollfd = new Uint8Array(POLLFD_SIZE);
    new Int32Array(pollfd.buffer)[POLLFD_FD_INDEX] = fd;
    const shorts = new Uint16Array(pollfd.buffer);
    shorts[POLLFD_EVENTS_INDEX] = events;
    const slice = Math.max(0, Math.min(POLL_SLICE_MS, Math.ceil(timeoutMs)));
    if (this.#polls++ === 0) this.#idle = new Promise((resolve) => (this.#wake = resolve));
    let ready: number;
    try {
      ready = await libc().poll(pollfd, 1n, slice);
    } finally {
      if (--this.#polls === 0) this.#wake?.();
    }
    this.#open("poll");
    if (ready < 0) {
      // errno belongs to the worker thread: ask again on this one to learn it.
      const again = libc().pollNow(pollfd, 1n, 0);
      if (again < 0) {
        const error = errno();
        if (error !== EINTR) throw new ErrnoError("poll", error);
      }
    }
    const revents = shorts[POLLFD_REVENTS_INDEX]!;
    if (revents & POLLNVAL) throw new ErrnoError("poll", EBADF, "the descriptor is not open");
    return revents;
  }
}
