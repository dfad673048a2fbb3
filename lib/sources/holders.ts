/**
 * Which other processes have a device open, read from `/proc/<pid>/fd` (Linux). Used when
 * a serial port is marked for exclusive use (TIOCEXCL), to tell a port really in use from
 * a stale mark.
 *
 * A pseudo-terminal keeps its exclusive mark for as long as any descriptor of it is open,
 * and the program that created it (a simulator, socat) holds its master side and often a
 * descriptor of the slave too. So a reader killed without closing its port leaves the mark
 * behind. The holders of a pseudo-terminal's master (`/dev/ptmx` with `tty-index: N` in
 * its fdinfo) are therefore counted apart from its readers: one descriptor of the slave
 * next to the master is the creator's own (PseudoTerminal keeps one); more, and it reads
 * the device too.
 *
 * ```
 *  /proc/<pid>/fd/<n>     → /dev/pts/3           a reader of /dev/pts/3
 *  /proc/<pid>/fd/<n>     → /dev/ptmx            with /proc/<pid>/fdinfo/<n> "tty-index: 3":
 *                                                the side that created /dev/pts/3
 * ```
 *
 * `/proc` is read through the C library (`procfs.ts`): Deno refuses it without
 * `--allow-all`.
 *
 * @module
 */

import { listDir, readLink, readSmallFile } from "./procfs.ts";

const ENOENT = 2;

/** A process that has the device open. */
export interface Holder {
  pid: number;
  /** Its command name (`/proc/<pid>/comm`). */
  name: string;
}

/** What `/proc` tells about a device. */
export interface Holders {
  /** Other processes that have the device itself open (the other side excluded). */
  readers: Holder[];
  /** Processes holding a pseudo-terminal's master side (they may hold the slave too). */
  creators: Holder[];
  /** False when some processes could not be looked into (other users', without root). */
  complete: boolean;
}

function canonical(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

function commandName(pid: number): string {
  return readSmallFile(`/proc/${pid}/comm`)?.trim() ?? "?";
}

/** The other processes that have `path` open. */
export function deviceHolders(path: string): Holders {
  const device = canonical(path);
  const ptyIndex = /^\/dev\/pts\/(\d+)$/.exec(device)?.[1];
  const readers: Holder[] = [];
  const creators: Holder[] = [];
  let complete = true;
  const pids = listDir("/proc");
  if (pids === null || !Array.isArray(pids)) return { readers, creators, complete: false };
  for (const name of pids) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === Deno.pid) continue;
    const fds = listDir(`/proc/${pid}/fd`);
    if (fds === null) return { readers, creators, complete: false };
    if (!Array.isArray(fds)) {
      // A process that ended meanwhile is fine; one we may not look into is not.
      if (fds.errno !== ENOENT) complete = false;
      continue;
    }
    let reads = 0;
    let creates = false;
    for (const fd of fds) {
      const target = readLink(`/proc/${pid}/fd/${fd}`);
      if (target === device) reads++;
      else if (ptyIndex !== undefined && (target === "/dev/ptmx" || target === "/dev/pts/ptmx")) {
        const info = readSmallFile(`/proc/${pid}/fdinfo/${fd}`) ?? "";
        if (new RegExp(`^tty-index:\\s*${ptyIndex}$`, "m").test(info)) creates = true;
      }
    }
    // The creator may keep one descriptor of the slave (as PseudoTerminal does); holding
    // more, it reads the device too.
    if (creates) creators.push({ pid, name: commandName(pid) });
    if (creates ? reads > 1 : reads > 0) readers.push({ pid, name: commandName(pid) });
  }
  return { readers, creators, complete };
}

/** `process 1234 "python3", process 99 "socat"` */
export function describeHolders(holders: readonly Holder[]): string {
  return holders.map((h) => `process ${h.pid} "${h.name}"`).join(", ");
}
