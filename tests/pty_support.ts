/**
 * Whether this machine has pseudo-terminals (`/dev/ptmx`), for the tests that drive a real
 * one. A test file that needs them is skipped, with a line that says so, where there are
 * none (some containers and emulators).
 *
 * @module
 */

/** True when `/dev/ptmx` is there; otherwise logs that `who`'s pty tests are skipped. */
export function hasPseudoTerminals(who: string): boolean {
  let found = false;
  try {
    found = Deno.statSync("/dev/ptmx").isCharDevice === true;
  } catch {
    found = false;
  }
  if (!found) console.log(`${who}: /dev/ptmx is absent: pseudo-terminal tests are skipped`);
  return found;
}
