/**
 * The sandbox of the released binary, read from the `compile:*` tasks in `deno.json`.
 *
 * `deno compile` bakes the permission flags and the V8 flags of those tasks into
 * `dist/smartmeter-<arch>`.
 * This module splits a task into its parts so that tests/compile_test.ts can run the
 * program from source under exactly those flags (the compile runtime cannot be downloaded
 * everywhere), and so that anyone can do the same by hand:
 *
 * ```sh
 * deno run $(deno run --allow-read=deno.json scripts/permissions.ts) main.ts check
 * ```
 *
 * Only simple task strings are understood: words separated by spaces, no quotes and no
 * shell operators. The compile tasks need nothing more, and anything else is refused
 * rather than guessed at.
 *
 * @module
 */

/** The Linux targets a release ships, by the name used in asset file names. */
export const COMPILE_TARGETS = {
  x86_64: "x86_64-unknown-linux-gnu",
  aarch64: "aarch64-unknown-linux-gnu",
} as const;

/** An architecture name as used in `compile:<arch>` and `dist/smartmeter-<arch>`. */
export type Arch = keyof typeof COMPILE_TARGETS;

/** One `compile:<arch>` task, taken apart. */
export interface CompileTask {
  /** task name, e.g. "compile:x86_64" */
  name: string;
  arch: Arch;
  /** value of `--target` */
  target: string;
  /** value of `--output` */
  output: string;
  /** the entry point (the last word) */
  entry: string;
  /** every word after `deno compile`, in order */
  args: string[];
  /** the permission flags only (`--allow-*`, `--deny-*`, `--ignore-*`, `--no-prompt`) */
  permissionFlags: string[];
  /** the V8 flags baked in with `--v8-flags=a,b` (`["a", "b"]`), in order */
  v8Flags: string[];
}

const SHELL_SYNTAX = /["'`$\\|&;<>(){}*?]/;
const PERMISSION_FLAG = /^--(?:allow|deny|ignore)-[a-z]+(?:=.*)?$|^--no-prompt$/;
/** Flags of `deno compile` that take the next word as their value. */
const FLAGS_WITH_VALUE = new Set(["--target", "--output", "-o", "--include", "--exclude"]);

/** Splits a task command into words. @throws {Error} on quotes or shell operators */
export function splitCommand(command: string): string[] {
  const bad = SHELL_SYNTAX.exec(command);
  if (bad !== null) {
    throw new Error(
      `Cannot read the task "${command}": it uses shell syntax "${bad[0]}"; ` +
        "write the compile tasks as plain words",
    );
  }
  return command.trim().split(/\s+/).filter((w) => w !== "");
}

/** Whether `word` is a permission flag that `deno compile` bakes into the binary. */
export function isPermissionFlag(word: string): boolean {
  return PERMISSION_FLAG.test(word);
}

/**
 * The list given to a permission flag: `null` when the flag is absent, `[]` when it is
 * given without a list (everything allowed), else the names or paths it lists.
 */
export function flagList(flags: readonly string[], flag: string): string[] | null {
  let found: string[] | null = null;
  for (const f of flags) {
    if (f === flag) found = [];
    else if (f.startsWith(`${flag}=`)) {
      found = f.slice(flag.length + 1).split(",").filter((v) => v !== "");
    }
  }
  return found;
}

/** Takes one compile task apart. @throws {Error} naming what does not fit */
export function parseCompileTask(name: string, command: string): CompileTask {
  const arch = name.replace(/^compile:/, "");
  if (!name.startsWith("compile:") || !(arch in COMPILE_TARGETS)) {
    throw new Error(
      `Unknown compile task "${name}": expected one of ${
        Object.keys(COMPILE_TARGETS).map((a) => `compile:${a}`).join(", ")
      }`,
    );
  }
  const words = splitCommand(command);
  if (words[0] !== "deno" || words[1] !== "compile") {
    throw new Error(`Task "${name}" must start with "deno compile", got "${command}"`);
  }
  const args = words.slice(2);
  const value = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : args.find((a) => a.startsWith(`${flag}=`))?.split("=")[1];
  };
  const target = value("--target");
  const output = value("--output") ?? value("-o");
  // The entry point is the last word that is neither a flag nor a flag's value.
  const entry = args.findLast((a, i) =>
    !a.startsWith("-") && !FLAGS_WITH_VALUE.has(args[i - 1] ?? "")
  );
  if (target === undefined || output === undefined || entry === undefined) {
    throw new Error(`Task "${name}" needs --target, --output and an entry point: "${command}"`);
  }
  return {
    name,
    arch: arch as Arch,
    target,
    output,
    entry,
    args,
    permissionFlags: args.filter(isPermissionFlag),
    v8Flags: args.filter((a) => a.startsWith("--v8-flags=")).flatMap((a) =>
      a.slice("--v8-flags=".length).split(",").filter((f) => f !== "")
    ),
  };
}

/** Reads every `compile:*` task of a deno.json. */
export async function readCompileTasks(
  denoJson: string | URL = new URL("../deno.json", import.meta.url),
): Promise<CompileTask[]> {
  const config = JSON.parse(await Deno.readTextFile(denoJson)) as {
    tasks?: Record<string, string | { command: string }>;
  };
  return Object.entries(config.tasks ?? {})
    .filter(([name]) => name.startsWith("compile:"))
    .map(([name, task]) => parseCompileTask(name, typeof task === "string" ? task : task.command));
}

if (import.meta.main) {
  const tasks = await readCompileTasks("deno.json");
  const first = tasks[0];
  if (first === undefined) {
    console.error("deno.json has no compile:* task");
    Deno.exit(1);
  }
  console.log(first.permissionFlags.join(" "));
}
