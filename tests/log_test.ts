import { deepEqual, equal, ok as assert } from "node:assert/strict";
import { Logger, memoryLogger } from "../lib/log.ts";
import { processLogger } from "../lib/commands/setup.ts";

Deno.test("Logger writes syslog priorities and no time under journald", () => {
  const lines: string[] = [];
  const logger = processLogger("debug", { JOURNAL_STREAM: "8:1234" }, (l) => lines.push(l), true);
  const log = logger.get("smartmeter");
  log.debug("d");
  log.info("i");
  log.warning("w");
  log.error("e");
  deepEqual(lines, [
    "<7>smartmeter: d",
    "<6>smartmeter: i",
    "<4>smartmeter: w",
    "<3>smartmeter: e",
  ]);
});

Deno.test("Logger adds the time on a terminal and nothing when piped", () => {
  const lines: string[] = [];
  processLogger("info", {}, (l) => lines.push(l), true).get("a").info("x");
  processLogger("info", {}, (l) => lines.push(l), false).get("a").info("x");
  assert(/^\d\d:\d\d:\d\d INFO a: x$/.test(lines[0]!), lines[0]!);
  equal(lines[1], "INFO a: x");
});

Deno.test("Logger filters by level, names children, indents continuation lines", () => {
  const { logger, lines } = memoryLogger("warning");
  const log = logger.get("smartmeter").child("mqtt");
  log.info("hidden");
  log.warning("two\nlines");
  equal(log.debugEnabled, false);
  deepEqual(lines, ["WARNING smartmeter:mqtt: two\n  lines"]);
  logger.options.level = "debug";
  equal(log.debugEnabled, true);
});

Deno.test("Logger passes every line through the redaction function", () => {
  const lines: string[] = [];
  const logger = new Logger({
    level: "info",
    journald: false,
    timestamps: false,
    write: (l) => lines.push(l),
    redact: (l) => l.replaceAll("secret", "***"),
  });
  logger.get("a").info("the secret is out");
  deepEqual(lines, ["INFO a: the *** is out"]);
});
