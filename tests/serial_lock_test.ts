/**
 * A stale exclusive mark (TIOCEXCL) on a pseudo-terminal: a reader killed without closing
 * its port leaves the mark behind while the other side of the pseudo-terminal stays open.
 * Root clears it when no other process has the device open; without root the message says
 * what it is instead of blaming "another program".
 */

import { equal, match, ok as assert, throws } from "node:assert/strict";
import { PseudoTerminal } from "../lib/sources/pty.ts";
import { SerialError, type SerialOptions, SerialPort } from "../lib/sources/serial.ts";
import { hasPseudoTerminals } from "./pty_support.ts";

const SERIAL_MODULE = new URL("../lib/sources/serial.ts", import.meta.url).href;
const hasPty = hasPseudoTerminals("serial_lock_test.ts");
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});
const isRoot = Deno.uid() === 0;
if (!hasPty || !isRoot) {
  console.log("serial_lock_test.ts: needs /dev/ptmx and root (to clear a stale mark): skipped");
}

function options(path: string): SerialOptions {
  return { path, baudRate: 9600, dataBits: 8, parity: "none", stopBits: 1 };
}

/** A child Deno that opens `path` exclusively and keeps it; resolves once it has. */
async function holder(path: string): Promise<Deno.ChildProcess> {
  const code = `import { SerialPort } from ${JSON.stringify(SERIAL_MODULE)};
SerialPort.open({ path: ${JSON.stringify(path)}, baudRate: 9600, dataBits: 8,
  parity: "none", stopBits: 1 });
console.log("opened");
setInterval(() => {}, 60_000);`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  equal(new TextDecoder().decode(value).trim(), "opened");
  return child;
}

Deno.test({
  name: "SerialPort.open() names the process that holds a port, and clears the mark a killed " +
    "reader left on a pseudo-terminal",
  ignore: !hasPty || !isRoot,
  async fn() {
    const pty = PseudoTerminal.open();
    const child = await holder(pty.path);
    try {
      throws(() => SerialPort.open(options(pty.path)), (e: unknown) => {
        assert(e instanceof SerialError);
        equal(e.code, "EBUSY");
        match(
          e.message,
          new RegExp(`^${pty.path} is in use by another program \\(process ${child.pid} `),
        );
        return true;
      });
      child.kill("SIGKILL");
      await child.status;
      await child.stdout.cancel().catch(() => {});
      // The mark outlived the reader (the pseudo-terminal's other side is still open).
      const port = SerialPort.open(options(pty.path));
      equal(port.isExclusive() ?? true, true, "ours now");
      port.close();
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      pty.close();
    }
  },
});

Deno.test({
  name: "without root, a stale mark on a pseudo-terminal is called what it is",
  ignore: !hasPty || !isRoot || SETPRIV === undefined,
  async fn() {
    const uid = 61234; // in the range systemd's DynamicUser= allocates from
    const pty = PseudoTerminal.open();
    const home = await Deno.makeTempDir();
    try {
      const child = await holder(pty.path);
      child.kill("SIGKILL");
      await child.status;
      await child.stdout.cancel().catch(() => {});
      await Deno.chown(pty.path, uid, null);
      await Deno.chown(home, uid, uid);
      const code = `import { SerialPort } from ${JSON.stringify(SERIAL_MODULE)};
try { SerialPort.open({ path: ${JSON.stringify(pty.path)}, baudRate: 9600, dataBits: 8,
  parity: "none", stopBits: 1 }).close(); console.log("opened"); }
catch (e) { console.log(e.message); }`;
      const out = await new Deno.Command(SETPRIV!, {
        args: [
          `--reuid=${uid}`,
          `--regid=${uid}`,
          "--clear-groups",
          "--inh-caps=-all",
          "--bounding-set=-all",
          "--no-new-privs",
          Deno.execPath(),
          "eval",
          code,
        ],
        clearEnv: true,
        env: { HOME: home, DENO_DIR: `${home}/deno`, PATH: "/usr/bin:/bin", NO_COLOR: "1" },
      }).output();
      const text = new TextDecoder().decode(out.stdout).trim();
      match(text, /is marked for exclusive use \(TIOCEXCL\)/, text);
      match(text, /a reader that ended without closing it/);
      match(text, /fuser -v /);
    } finally {
      pty.close();
      await Deno.remove(home, { recursive: true });
    }
  },
});
