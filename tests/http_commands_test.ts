/**
 * The web server from the command line: `--http` on `run` and `demo`, `http.listen` in the
 * config, the exit status 78 for an address that cannot be had, and `demo` printing the
 * page's URL. In process, through `main()`.
 */

import { equal, match, ok as assert } from "node:assert/strict";
import { runMain } from "./cli_support.ts";
import { fixture } from "./fixtures.ts";

async function withTakenPort(body: (port: number) => Promise<void>): Promise<void> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await body((l.addr as Deno.NetAddr).port);
  } finally {
    l.close();
  }
}

async function capture(dir: string): Promise<string> {
  // A capture file as the source: the daemon replays it and ends.
  const path = `${dir}/capture.hex`;
  await Deno.writeTextFile(path, fixture("norway_aidon_1").hex);
  return path;
}

Deno.test("run --help and demo --help name --http (and run --ingress)", async () => {
  const r = await runMain(["run", "--help"]);
  match(r.out.join("\n"), /--http HOST:PORT/);
  match(r.out.join("\n"), /--ingress/);
  const d = await runMain(["demo", "--help"]);
  match(d.out.join("\n"), /--http HOST:PORT/);
});

Deno.test("run --http with something that is no address is a usage error (2)", async () => {
  const r = await runMain(["run", "--http", "8080"]);
  equal(r.status, 2);
  match(r.err[0]!, /^smartmeter run: --http: "8080" is not an address to listen on/);
  const d = await runMain(["demo", "--http", "http://localhost:8080"]);
  equal(d.status, 2);
  match(d.err[0]!, /^smartmeter demo: --http: .* is a URL/);
});

Deno.test("run stops with 78 when the --http port is in use, naming --http", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = `${dir}/config.yaml`;
    await Deno.writeTextFile(config, `dlms:\n  port: ${await capture(dir)}\n`);
    await withTakenPort(async (port) => {
      const r = await runMain([
        "run",
        "--config",
        config,
        "--no-mqtt",
        "--http",
        `127.0.0.1:${port}`,
      ]);
      equal(r.status, 78, r.err.join("\n"));
      const line = r.err.find((l) => l.includes("cannot listen"));
      assert(line, r.err.join("\n"));
      match(
        line,
        new RegExp(`--http: cannot listen on "127\\.0\\.0\\.1:${port}": the port is in use`),
      );
      // Nothing else started: no source was opened.
      assert(!r.err.some((l) => l.includes("Meter source")), r.err.join("\n"));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run stops with 78 when http.listen's port is in use, naming http.listen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await withTakenPort(async (port) => {
      const config = `${dir}/config.yaml`;
      await Deno.writeTextFile(
        config,
        `dlms:\n  port: ${await capture(dir)}\nhttp:\n  listen: 127.0.0.1:${port}\n`,
      );
      const r = await runMain(["run", "--config", config, "--no-mqtt"]);
      equal(r.status, 78);
      assert(r.err.some((l) => l.includes(`http.listen: cannot listen on "127.0.0.1:${port}"`)));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a bad http.listen in the config is a config error (78) naming the key", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = `${dir}/config.yaml`;
    await Deno.writeTextFile(config, `http:\n  listen: "localhost"\n`);
    const r = await runMain(["run", "--config", config]);
    equal(r.status, 78);
    assert(
      r.err.some((l) => /http\.listen: "localhost" is not an address/.test(l)),
      r.err.join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run --http logs the page's URL and ends cleanly after a replayed capture", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = `${dir}/config.yaml`;
    await Deno.writeTextFile(config, `dlms:\n  port: ${await capture(dir)}\n`);
    const r = await runMain(["run", "--config", config, "--no-mqtt", "--http", "127.0.0.1:0"]);
    equal(r.status, 0, r.err.join("\n"));
    match(r.err.join("\n"), /Web page on http:\/\/127\.0\.0\.1:\d+\//);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("demo --http prints the page's URL, and the page answers while it runs", async () => {
  let url: string | null = null;
  let status: number | null = null;
  const r = await runMain(["demo", "--count", "3", "--interval", "0.3", "--http", "127.0.0.1:0"], {
    onErr: (line) => {
      const m = /^Web page: open (http:\/\/127\.0\.0\.1:\d+\/) in a browser$/.exec(line);
      if (m) {
        url = m[1]!;
        // Asked while the demo runs (the server stops with it).
        fetch(`${url}api/v1/status`).then(async (res) => {
          status = res.status;
          await res.body?.cancel();
        });
      }
    },
  });
  equal(r.status, 0, r.err.join("\n"));
  assert(url !== null, `the URL is printed:\n${r.err.join("\n")}`);
  equal(status, 200);
  equal(r.out.length, 3);
});
