/**
 * The `struct termios` offsets and the Linux constants of `lib/sources/libc.ts`, checked
 * against the C library this Deno really loads rather than against our own reading of the
 * headers. Written for the aarch64 lane (`scripts/test_arm64.sh`, Deno's aarch64 build
 * under qemu-user with Debian's aarch64 glibc, as on Raspberry Pi OS 64-bit); it holds on
 * x86-64 too and runs there with the rest of the suite.
 *
 * The trick: libc's own `cfmakeraw` writes known bits and bytes into a buffer filled with
 * a sentinel, so every byte it changed tells where glibc keeps that field.
 *
 * @module
 */

import { deepEqual, equal, ok as assert } from "node:assert/strict";
import {
  CLOCAL,
  CREAD,
  CS8,
  CSIZE,
  cString,
  EAGAIN,
  errno,
  libc,
  O_CLOEXEC,
  O_NOCTTY,
  O_NONBLOCK,
  O_RDWR,
  PARENB,
  speedFromLibc,
  speedToLibc,
  Termios,
  TERMIOS_BUFFER_SIZE,
  VMIN,
  VTIME,
} from "../../lib/sources/libc.ts";
import { PseudoTerminal } from "../../lib/sources/pty.ts";

/** glibc and musl's `sizeof(struct termios)` on x86-64 and aarch64. */
const TERMIOS_SIZE = 60;
const C_IFLAG = 0;
const C_OFLAG = 4;
const C_CFLAG = 8;
const C_LFLAG = 12;
const C_CC = 17;

/** The bits `cfmakeraw(3)` clears (asm-generic termbits.h values, octal as in the header). */
const RAW_IFLAG_CLEARED = 0o1 | 0o2 | 0o10 | 0o40 | 0o100 | 0o200 | 0o400 | 0o2000; // IGNBRK BRKINT PARMRK ISTRIP INLCR IGNCR ICRNL IXON
const RAW_OFLAG_CLEARED = 0o1; // OPOST
const RAW_LFLAG_CLEARED = 0o1 | 0o2 | 0o10 | 0o100 | 0o100000; // ISIG ICANON ECHO ECHONL IEXTEN

/** c_cc indexes of the Linux defaults a new tty starts with (INIT_C_CC). */
const V_DEFAULTS: [name: string, index: number, value: number][] = [
  ["VINTR (^C)", 0, 0x03],
  ["VQUIT (^\\)", 1, 0x1c],
  ["VERASE (DEL)", 2, 0x7f],
  ["VKILL (^U)", 3, 0x15],
  ["VEOF (^D)", 4, 0x04],
  ["VSTART (^Q)", 8, 0x11],
  ["VSTOP (^S)", 9, 0x13],
  ["VSUSP (^Z)", 10, 0x1a],
];

const hasPty = (() => {
  try {
    Deno.statSync("/dev/ptmx");
    return true;
  } catch {
    return false;
  }
})();

function filled(byte: number): Termios {
  const t = new Termios();
  t.bytes.fill(byte);
  return t;
}

function word(t: Termios, offset: number): number {
  return new DataView(t.bytes.buffer).getUint32(offset, true);
}

/** The offsets whose byte differs between `a` and `b`. */
function changedOffsets(a: Uint8Array, b: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) out.push(i);
  return out;
}

Deno.test("the platform is little-endian Linux, as Termios reads its flags natively", () => {
  equal(Deno.build.os, "linux");
  equal(new Uint8Array(Uint32Array.of(1).buffer)[0], 1);
});

Deno.test("libc cfmakeraw() changes exactly the flag words and c_cc bytes Termios names", () => {
  const t = filled(0xff);
  const before = t.bytes.slice();
  libc().cfmakeraw(t.bytes);
  equal(word(t, C_IFLAG), (~RAW_IFLAG_CLEARED) >>> 0);
  equal(word(t, C_OFLAG), (~RAW_OFLAG_CLEARED) >>> 0);
  equal(word(t, C_CFLAG), (~PARENB) >>> 0, "CSIZE cleared then CS8 set, PARENB cleared");
  equal(word(t, C_LFLAG), (~RAW_LFLAG_CLEARED) >>> 0);
  equal(t.iflag, word(t, C_IFLAG), "Termios.iflag reads offset 0");
  equal(t.cflag, word(t, C_CFLAG), "Termios.cflag reads offset 8");
  equal(t.bytes[C_CC + VMIN], 1, "c_cc[VMIN] is at offset 23");
  equal(t.bytes[C_CC + VTIME], 0, "c_cc[VTIME] is at offset 22");
  equal(t.cc(VMIN), 1);
  equal(t.cc(VTIME), 0);
  // iflag bytes 0-1, oflag byte 4, PARENB in cflag byte 9, lflag bytes 12-13 (IEXTEN is
  // 0x8000), c_cc[VTIME] and c_cc[VMIN]; nothing else, padding and speeds included.
  deepEqual(changedOffsets(before, t.bytes), [0, 1, 4, C_CFLAG + 1, 12, 13, 22, 23]);
});

Deno.test("libc cfsetispeed() and cfsetospeed() write nothing past byte 60", () => {
  const termios = filled(0xa5);
  const speed = speedToLibc(9600)!;
  equal(libc().cfsetispeed(termios.bytes, speed), 0);
  equal(libc().cfsetospeed(termios.bytes, speed), 0);
  equal(speedFromLibc(libc().cfgetospeed(termios.bytes)), 9600);
  deepEqual(
    [...termios.bytes.subarray(TERMIOS_SIZE)],
    new Array(TERMIOS_BUFFER_SIZE - TERMIOS_SIZE).fill(0xa5),
  );
});

Deno.test({
  name: "libc tcgetattr() on a pty fills the fields where Termios reads them",
  ignore: !hasPty,
  fn: ptyLayout,
});

async function ptyLayout(t: Deno.TestContext): Promise<void> {
  const pty = PseudoTerminal.open();
  const fd = libc().open(cString(pty.path), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0);
  try {
    assert(fd >= 0, `open(${pty.path}) failed with errno ${errno()}`);
    const termios = filled(0xa5);
    equal(libc().tcgetattr(fd, termios.bytes), 0);

    await t.step("tcgetattr() writes nothing past byte 60", () => {
      deepEqual(
        [...termios.bytes.subarray(TERMIOS_SIZE)],
        new Array(TERMIOS_BUFFER_SIZE - TERMIOS_SIZE).fill(0xa5),
      );
    });

    await t.step("c_cflag of the raw pty reads CS8, CREAD, CLOCAL at offset 8", () => {
      equal(termios.cflag & CSIZE, CS8);
      equal(termios.cflag & (CREAD | CLOCAL), CREAD | CLOCAL);
      equal(termios.cflag & PARENB, 0);
      equal(speedFromLibc(libc().cfgetospeed(termios.bytes)), 38400, "a new tty's speed");
    });

    for (const [name, index, value] of V_DEFAULTS) {
      await t.step(`c_cc[${name}] holds the kernel's default at offset ${C_CC + index}`, () => {
        equal(termios.cc(index), value);
      });
    }
    await t.step("c_cc[VMIN] = 1 and c_cc[VTIME] = 0, as PseudoTerminal set them", () => {
      equal(termios.cc(VMIN), 1);
      equal(termios.cc(VTIME), 0);
    });

    await t.step("read() on the empty line fails at once with EAGAIN (O_NONBLOCK)", () => {
      const n = libc().read(fd, new Uint8Array(8), 8n);
      equal(n, -1n);
      equal(errno(), EAGAIN);
    });
  } finally {
    if (fd >= 0) libc().close(fd);
    pty.close();
    await pty.whenIdle();
  }
}
