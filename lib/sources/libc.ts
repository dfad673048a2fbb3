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
 * O_LARGEFILE. pipe2(2) takes the same O_NONBLOCK and O_CLOEXEC as open(2) (the kernel
 * accepts only those, O_DIRECT and O_NOTIFICATION_PIPE there). glibc's aarch64 port keeps
 * the generic Linux `bits/termios-*.h`. The values were printed by a C program compiled
 * here (x86-64) and read from those headers for aarch64. Other architectures (alpha, mips,
 * powerpc, sparc) differ, hence {@link assertSupportedPlatform}.
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
  /** Off the event loop, on the descriptor and a wake pipe; bounded by POLL_MAX_MS. */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  /** The same poll(2), on this thread, so that errno can be read after it. */
  pollNow: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
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

/**
 * Longest single poll(2). Nothing needs it to end sooner (close() and an abort wake the
 * poll through the wake pipe); it only bounds how long a lost wake-up could go unnoticed.
 */
export const POLL_MAX_MS = 10_000;

/** Bytes the wake pipe is drained with, per read(2). */
const WAKE_DRAIN_SIZE = 64;
const WAKE_BYTE = Uint8Array.of(1);
/** Index of the device and of the wake pipe's read end in the `struct pollfd[2]`. */
const POLL_DEVICE = 0;
const POLL_WAKE = 1;

/**
 * A file descriptor opened with O_NONBLOCK, read and written from JavaScript.
 *
 * ```
 *   main thread                              a worker thread (nonblocking FFI)
 *   read(2) → EAGAIN
 *   poll([device, wake pipe], ≤ 10 s)  ───▶  poll(2) sleeps: no wake-ups while idle
 *   close() or abort: write(wake, 1 byte) ─▶  poll(2) returns at once (POLLIN on wake)
 *   read(2) again, or EBADF once closed  ◀──
 * ```
 *
 * Each object owns a self-pipe (pipe2, O_NONBLOCK | O_CLOEXEC). A wait is one poll(2)
 * off the event loop on the descriptor and the pipe's read end, as long as the caller's
 * timeout but at most {@link POLL_MAX_MS}, so an idle reader wakes up once in 10 s.
 * close() and an `AbortSignal` write one byte to the pipe, which ends every poll in
 * progress at once (poll is level-triggered: a poll the worker has not yet entered returns
 * at once too). The byte stays until a poll starts that no other poll overlaps, which
 * drains the pipe first: a poll still running may need it to notice its abort.
 *
 * read(2) and write(2) run on this thread (they never block), so errno is the right one.
 * close() closes the descriptor at once, so that the port can be opened again; the pipe
 * stays open until the last poll has returned (its numbers are in that poll's pollfd
 * array), and {@link whenIdle} resolves then.
 */
export class NonBlockingFd {
  /** poll(2) calls made by every NonBlockingFd of this process: tests count wake-ups. */
  static #pollCalls = 0;

  #fd: number;
  /** The wake pipe's read end (polled) and write end (written by close() and aborts). */
  #wakeIn: number;
  #wakeOut: number;
  /** A byte sits in the wake pipe. */
  #woken = false;
  #polls = 0;
  #idle: Promise<void> = Promise.resolve();
  #wake: (() => void) | undefined;

  /**
   * Takes over `fd` and opens the wake pipe. Throws {@link ErrnoError} when pipe2 fails
   * (EMFILE); `fd` then stays the caller's to close.
   */
  constructor(fd: number) {
    const ends = new Int32Array(2);
    check("pipe2", libc().pipe2(new Uint8Array(ends.buffer), O_NONBLOCK | O_CLOEXEC));
    this.#fd = fd;
    this.#wakeIn = ends[0]!;
    this.#wakeOut = ends[1]!;
  }

  /** How many poll(2) calls all NonBlockingFd objects have made so far (for tests). */
  static get pollCalls(): number {
    return NonBlockingFd.#pollCalls;
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
   * Resolves 0 on timeout or when `signal` aborts (at once, even mid-wait). Throws
   * {@link ErrnoError}: EIO on hang-up (read(2) returned 0, or poll reported
   * POLLHUP/POLLERR with nothing to read), EBADF once closed.
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
      const revents = await this.#poll(POLLIN, left, signal);
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
      const revents = await this.#poll(POLLOUT, left, signal);
      if (revents & (POLLHUP | POLLERR) && !(revents & POLLOUT)) {
        throw new ErrnoError("write", EIO, "hang-up");
      }
    }
    return written;
  }

  /**
   * Closes the descriptor (idempotent). Pending reads and writes are woken and reject
   * with EBADF; the wake pipe is closed once they have (see {@link whenIdle}).
   */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    if (this.#polls > 0) this.#wakeUp();
    else this.#closeWakePipe();
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

  /** Ends every poll in progress: one byte in the wake pipe (it stays until drained). */
  #wakeUp(): void {
    if (this.#woken || this.#wakeOut < 0) return;
    this.#woken = Number(libc().write(this.#wakeOut, WAKE_BYTE, 1n)) === 1;
  }

  /** Empties the wake pipe; only when no poll is running, which could still need it. */
  #drainWakePipe(): void {
    const sink = new Uint8Array(WAKE_DRAIN_SIZE);
    while (Number(libc().read(this.#wakeIn, sink, BigInt(sink.length))) > 0) { /* discard */ }
    this.#woken = false;
  }

  #closeWakePipe(): void {
    if (this.#wakeIn < 0) return;
    libc().close(this.#wakeIn);
    libc().close(this.#wakeOut);
    this.#wakeIn = -1;
    this.#wakeOut = -1;
  }

  /**
   * One poll(2) for `events` on the descriptor and the wake pipe, up to `timeoutMs`
   * (at most {@link POLL_MAX_MS}); an abort of `signal` ends it. Returns the
   * descriptor's revents: 0 on timeout or wake-up.
   */
  async #poll(events: number, timeoutMs: number, signal?: AbortSignal): Promise<number> {
    const fd = this.#open("poll");
    // A byte left by an earlier wake-up would end this poll at once. Nobody else is
    // waiting (another poll in progress may still need the byte to notice its abort).
    if (this.#woken && this.#polls === 0) this.#drainWakePipe();
    const pollfds = new Uint8Array(2 * POLLFD_SIZE);
    const ints = new Int32Array(pollfds.buffer);
    const shorts = new Uint16Array(pollfds.buffer);
    const entry = (index: number) => index * (POLLFD_SIZE / 4);
    const shortAt = (index: number, field: number) => index * (POLLFD_SIZE / 2) + field;
    ints[entry(POLL_DEVICE) + POLLFD_FD_INDEX] = fd;
    shorts[shortAt(POLL_DEVICE, POLLFD_EVENTS_INDEX)] = events;
    ints[entry(POLL_WAKE) + POLLFD_FD_INDEX] = this.#wakeIn;
    shorts[shortAt(POLL_WAKE, POLLFD_EVENTS_INDEX)] = POLLIN;
    const wait = Math.max(0, Math.min(POLL_MAX_MS, Math.ceil(timeoutMs)));
    if (this.#polls++ === 0) this.#idle = new Promise((resolve) => (this.#wake = resolve));
    const nudge = () => this.#wakeUp();
    signal?.addEventListener("abort", nudge);
    NonBlockingFd.#pollCalls++;
    let ready: number;
    try {
      ready = await libc().poll(pollfds, 2n, wait);
    } finally {
      signal?.removeEventListener("abort", nudge);
      if (--this.#polls === 0) {
        if (this.#fd < 0) this.#closeWakePipe();
        this.#wake?.();
      }
    }
    this.#open("poll");
    if (ready < 0) {
      // errno belongs to the worker thread: ask again on this one to learn it.
      const again = libc().pollNow(pollfds, 2n, 0);
      if (again < 0) {
        const error = errno();
        if (error !== EINTR) throw new ErrnoError("poll", error);
      }
    }
    const revents = shorts[shortAt(POLL_DEVICE, POLLFD_REVENTS_INDEX)]!;
    if (revents & POLLNVAL) throw new ErrnoError("poll", EBADF, "the descriptor is not open");
    return revents;
  }
}
