/**
 * Why a file cannot be read, in words a user can act on: it does not exist, it is a
 * directory, or who owns it with which mode and who this program runs as (under systemd's
 * `DynamicUser=` that is a uid no one chose, which is exactly what a user needs to see).
 *
 * The identity comes from the C library (`getuid`, `getgid`, `getgroups`: the released
 * binary has `--allow-ffi` but no `--allow-sys`), user and group names from `/etc/passwd`
 * and `/etc/group` where they are listed.
 *
 * @module
 */

import { processIds } from "../sources/procfs.ts";

/** Who this process runs as. */
export interface Identity {
  uid: number;
  gid: number;
  /** Supplementary groups. */
  groups: number[];
}

/**
 * The process's real uid, gid and supplementary groups: from the C library, else from
 * `/proc/self/status` (which Deno gives only with `--allow-all`); null when neither works.
 */
export function processIdentity(statusText?: string): Identity | null {
  let text = statusText;
  if (text === undefined) {
    const ids = processIds();
    if (ids !== null) return ids;
    try {
      text = Deno.readTextFileSync("/proc/self/status");
    } catch {
      return null;
    }
  }
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(text!)?.[1];
  const uid = Number(field("Uid")?.split(/\s+/)[0]);
  const gid = Number(field("Gid")?.split(/\s+/)[0]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return null;
  const groups = (field("Groups") ?? "").trim().split(/\s+/).filter((g) => g !== "").map(Number);
  return { uid, gid, groups };
}

/** Names by id from a passwd or group file (`name:x:id:...`). */
function namesById(path: string): Map<number, string> {
  const names = new Map<number, string>();
  try {
    for (const line of Deno.readTextFileSync(path).split("\n")) {
      const [name, , id] = line.split(":");
      if (name && id !== undefined && /^\d+$/.test(id)) names.set(Number(id), name);
    }
  } catch {
    // not readable: ids only
  }
  return names;
}

function named(names: Map<number, string>, id: number): string {
  const name = names.get(id);
  return name === undefined ? String(id) : name;
}

/** `user "pi" (uid 1000), groups dialout, smartmeter` or `uid 61234, groups 20`. */
export function describeIdentity(id: Identity): string {
  const users = namesById("/etc/passwd");
  const groupNames = namesById("/etc/group");
  const user = users.has(id.uid) ? `user "${users.get(id.uid)}" (uid ${id.uid})` : `uid ${id.uid}`;
  const groups = [id.gid, ...id.groups.filter((g) => g !== id.gid)].map((g) =>
    named(groupNames, g)
  );
  return `${user}, group${groups.length === 1 ? "" : "s"} ${groups.join(", ")}`;
}

/** `root:smartmeter, mode 0640` */
function describeOwner(info: Deno.FileInfo): string {
  const owner = `${named(namesById("/etc/passwd"), info.uid ?? -1)}:${
    named(namesById("/etc/group"), info.gid ?? -1)
  }`;
  const mode = ((info.mode ?? 0) & 0o7777).toString(8).padStart(4, "0");
  return `${owner}, mode ${mode}`;
}

/** Whether `id` has permission `bit` (4 read, 2 write, 1 search) on a file with these owners. */
export function permitted(info: Deno.FileInfo, id: Identity, bit: 4 | 2 | 1): boolean {
  if (id.uid === 0) return true;
  const mode = info.mode ?? 0;
  if (info.uid === id.uid) return (mode & (bit << 6)) !== 0;
  if (info.gid !== null && (info.gid === id.gid || id.groups.includes(info.gid))) {
    return (mode & (bit << 3)) !== 0;
  }
  return (mode & bit) !== 0;
}

function parents(path: string): string[] {
  const parts = path.split("/").filter((p) => p !== "");
  const out: string[] = [];
  for (let i = 0; i < parts.length; i++) out.push("/" + parts.slice(0, i).join("/"));
  return out.map((p) => p.replace(/^\/\//, "/"));
}

/**
 * Why reading `path` failed with `e`: "it does not exist", "it is a directory", or, for a
 * permission problem, the owner and mode of the file (or of the directory that cannot be
 * entered) and who this program runs as.
 */
export async function whyUnreadable(path: string, e: unknown): Promise<string> {
  if (e instanceof Deno.errors.NotFound) return "it does not exist";
  if (e instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (!(e instanceof Deno.errors.PermissionDenied)) {
    return e instanceof Error ? e.message : String(e);
  }
  const id = processIdentity();
  const me = id === null ? "" : `, and this program runs as ${describeIdentity(id)}`;
  const absolute = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  if (id !== null) {
    for (const dir of parents(absolute)) {
      try {
        const info = await Deno.stat(dir);
        if (!permitted(info, id, 1)) {
          return `permission denied: the directory ${dir} (${describeOwner(info)}) cannot be ` +
            `entered${me}`;
        }
      } catch {
        break;
      }
    }
  }
  try {
    return `permission denied: it belongs to ${describeOwner(await Deno.stat(absolute))}${me}`;
  } catch {
    return `permission denied${me}`;
  }
}

/**
 * Why creating or writing `path` failed with `e`: its directory does not exist, it is a
 * directory, or who owns it (or its directory) and who this program runs as.
 */
export async function whyUnwritable(path: string, e: unknown): Promise<string> {
  const absolute = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  const parent = absolute.slice(0, absolute.lastIndexOf("/")) || "/";
  if (e instanceof Deno.errors.NotFound) return `the directory ${parent} does not exist`;
  if (e instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (!(e instanceof Deno.errors.PermissionDenied)) {
    return e instanceof Error ? e.message : String(e);
  }
  const id = processIdentity();
  const me = id === null ? "" : `, and this program runs as ${describeIdentity(id)}`;
  try {
    const info = await Deno.stat(absolute);
    return `permission denied: it belongs to ${describeOwner(info)}${me}`;
  } catch {
    try {
      const info = await Deno.stat(parent);
      return `permission denied: the directory ${parent} belongs to ${describeOwner(info)}${me}`;
    } catch {
      return `permission denied${me}`;
    }
  }
}
