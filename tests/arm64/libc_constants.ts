/**
 * Compares the constants of `lib/sources/libc.ts` with the JSON that
 * `tests/arm64/libc_constants.c` printed on the target (the C headers' own values).
 * Prints one line per mismatch and a summary; exits 1 on any mismatch.
 *
 * ```
 * deno run --allow-read tests/arm64/libc_constants.ts values.json
 * ```
 *
 * Run by `scripts/test_arm64.sh` (x86-64 Deno, reading what the aarch64 build printed).
 *
 * @module
 */

import * as libc from "../../lib/sources/libc.ts";

/**
 * The layout `Termios` and `NonBlockingFd` use: private constants of libc.ts, mirrored
 * here (its module doc draws the same offsets).
 */
const LAYOUT: Record<string, number> = {
  "termios.c_iflag": 0,
  "termios.c_cflag": 8,
  "termios.c_cc": 17,
  "sizeof pollfd": 8,
  "pollfd.fd": 0,
  "pollfd.events": 4,
  "pollfd.revents": 6,
  "sizeof tcflag_t": 4,
  "sizeof speed_t": 4,
};

/** Every (name, value) pair libc.ts holds that the C program printed too. */
export function expectedValues(): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, value] of Object.entries(libc)) {
    if (typeof value === "number") out.set(name, value);
  }
  for (const [baud, code] of libc.BAUD_CODES) out.set(`B${baud}`, code);
  for (const [value, name] of libc.ERRNO_NAMES) out.set(name, value);
  for (const [name, value] of Object.entries(LAYOUT)) out.set(name, value);
  return out;
}

/** The mismatches between `expected` and the C values, as readable lines. */
export function compare(expected: Map<string, number>, c: Record<string, number>): string[] {
  const problems: string[] = [];
  for (const [name, value] of expected) {
    if (!(name in c)) continue; // a helper constant of libc.ts with no C counterpart
    if (c[name] !== value) problems.push(`${name}: libc.ts has ${value}, C has ${c[name]}`);
  }
  const size = c["sizeof termios"];
  if (size === undefined || size > libc.TERMIOS_BUFFER_SIZE) {
    problems.push(`sizeof termios: "${size}" does not fit TERMIOS_BUFFER_SIZE`);
  }
  return problems;
}

if (import.meta.main) {
  const path = Deno.args[0];
  if (path === undefined) {
    console.error("usage: libc_constants.ts VALUES.json");
    Deno.exit(2);
  }
  const c = JSON.parse(await Deno.readTextFile(path)) as Record<string, number>;
  const expected = expectedValues();
  const problems = compare(expected, c);
  for (const problem of problems) console.log(`mismatch: ${problem}`);
  const compared = [...expected.keys()].filter((name) => name in c).length + 1;
  console.log(
    `${compared - problems.length} of ${compared} libc.ts values match the C headers`,
  );
  Deno.exit(problems.length === 0 ? 0 : 1);
}
