/**
 * Who this process runs as, and what `/proc` says about other processes, through the C
 * library: Deno refuses `/proc` to a program without `--allow-all`, and the released binary
 * has only `--allow-read` and `--allow-ffi` (see deno.json's compile tasks). Every function
 * returns null when the library or the file cannot be reached, never throws.
 *
 * `struct dirent` as readdir(3) returns it on 64-bit glibc and musl (x86-64, aarch64):
 *
 * ```
 *  offset  size  field
 *   0      8     d_ino
 *   8      8     d_off
 *  16      2     d_reclen
 *  18      1     d_type
 *  19    256     d_name    NUL-terminated
 * ```
 *
 * @module
 */

const DIRENT_D_NAME = 19;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const PATH_MAX = 4096;
const MAX_GROUPS = 256;

const SYMBOLS = {
  getuid: { parameters: [], result: "u32" },
  getgid: { parameters: [], result: "u32" },
  getgroups: { parameters: ["i32", "buffer"], result: "i32" },
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

let library: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | null | undefined;

function c(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | null {
  if (library !== undefined) return library;
  library = null;
  if (Deno.build.os !== "linux") return null;
  for (const name of ["libc.so.6", `libc.musl-${Deno.build.arch}.so.1`]) {
    try {
      library = Deno.dlopen(name, SYMBOLS).symbols;
      break;
    } catch {
      // the next name, or no FFI permission
    }
  }
  return library;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(encoder.encode(s).length + 1);
  encoder.encodeInto(s, bytes);
  return bytes;
}

/** The errno left by the last failed call of this thread. */
function errno(lib: NonNullable<ReturnType<typeof c>>): number {
  const where = lib.__errno_location();
  return where === null ? 0 : new Deno.UnsafePointerView(where).getInt32(0);
}

/** The real uid, gid and supplementary groups of this process. */
export function processIds(): { uid: number; gid: number; groups: number[] } | null {
  const lib = c();
  if (lib === null) return null;
  const buf = new Uint32Array(MAX_GROUPS);
  const n = lib.getgroups(MAX_GROUPS, buf);
  return { uid: lib.getuid(), gid: lib.getgid(), groups: n > 0 ? [...buf.subarray(0, n)] : [] };
}

/** A directory's entries (without `.` and `..`), or the errno (13 = EACCES) of opendir. */
export function listDir(path: string): string[] | { errno: number } | null {
  const lib = c();
  if (lib === null) return null;
  const dir = lib.opendir(cString(path));
  if (dir === null) return { errno: errno(lib) };
  const names: string[] = [];
  try {
    for (;;) {
      const entry = lib.readdir(dir);
      if (entry === null) break;
      const name = Deno.UnsafePointerView.getCString(entry, DIRENT_D_NAME);
      if (name !== "." && name !== "..") names.push(name);
    }
  } finally {
    lib.closedir(dir);
  }
  return names;
}

/** Where a symbolic link points, or null. */
export function readLink(path: string): string | null {
  const lib = c();
  if (lib === null) return null;
  const buf = new Uint8Array(PATH_MAX);
  const n = Number(lib.readlink(cString(path), buf, BigInt(buf.length)));
  return n < 0 ? null : decoder.decode(buf.subarray(0, n));
}

/** The start of a small file (such as /proc/<pid>/fdinfo/<fd>), or null. */
export function readSmallFile(path: string, max = PATH_MAX): string | null {
  const lib = c();
  if (lib === null) return null;
  const fd = lib.open(cString(path), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return null;
  try {
    const buf = new Uint8Array(max);
    const n = Number(lib.read(fd, buf, BigInt(buf.length)));
    return n < 0 ? null : decoder.decode(buf.subarray(0, n));
  } finally {
    lib.close(fd);
  }
}
