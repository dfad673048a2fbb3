/**
 * A real Mosquitto broker for tests, and a CA made with the `openssl` CLI.
 *
 * `startBroker()` writes a config into a temporary directory, picks a free loopback
 * port, starts `mosquitto -c <config>`, waits until the port accepts connections, and
 * returns a handle whose `stop()` kills the process and waits for it, `start()` starts
 * it again on the same port, and `close()` also removes the directory. Callers close it
 * in a `finally` block.
 *
 * Mosquitto started as root drops to its own user before it opens its log file, and the
 * temporary directory is private to us; the config says `user root` when we are root, so
 * it keeps the rights it started with (as a normal user nothing changes).
 *
 * When Mosquitto (or openssl) is not installed, `MOSQUITTO` (or `OPENSSL`) is null and
 * the tests that need it are ignored with a message, never faked.
 *
 * @module
 */

import type { MqttConfig } from "../../lib/config.ts";
import type { DeviceInfo } from "../../lib/homeassistant/discovery.ts";

function findProgram(name: string, extra: string[]): string | null {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== ""), ...extra];
  for (const dir of dirs) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** Path of the mosquitto binary, or null when it is not installed. */
export const MOSQUITTO: string | null = findProgram("mosquitto", ["/usr/sbin", "/usr/local/sbin"]);
/** Path of mosquitto_passwd, or null. */
export const MOSQUITTO_PASSWD: string | null = findProgram("mosquitto_passwd", ["/usr/sbin"]);
/** Path of the openssl CLI, or null. */
export const OPENSSL: string | null = findProgram("openssl", []);

/** Why broker tests are skipped, or null when they can run. */
export function brokerMissing(needTls = false): string | null {
  if (MOSQUITTO === null) return "mosquitto is not installed: MQTT broker tests are skipped";
  if (MOSQUITTO_PASSWD === null) return "mosquitto_passwd is not installed: broker tests skipped";
  if (needTls && OPENSSL === null) return "openssl is not installed: MQTT TLS tests are skipped";
  return null;
}

/** Files of a test PKI. */
export interface Certificates {
  ca: string;
  serverCert: string;
  serverKey: string;
  /** A server certificate for `wrong.example` only (for the host name check). */
  wrongHostCert: string;
  wrongHostKey: string;
  clientCert: string;
  clientKey: string;
}

export interface BrokerOptions {
  /** User name → password; anonymous access is refused when given. */
  users?: Record<string, string>;
  /** The text of an ACL file (`user NAME`, `topic read|write|readwrite PATTERN`). */
  acl?: string;
  /** A TLS listener instead of plain TCP. */
  tls?: {
    certs: Certificates;
    requireCertificate?: boolean;
    /** Serve the `wrong.example` certificate. */
    wrongHost?: boolean;
  };
}

export interface Broker {
  readonly port: number;
  readonly dir: string;
  /** Starts Mosquitto again on the same port (after `stop()`). */
  start(): Promise<void>;
  /** Kills Mosquitto and waits until it exited. */
  stop(): Promise<void>;
  /** Freezes Mosquitto (SIGSTOP): connections stay open, nothing is read or answered. */
  pause(): void;
  /** Lets a paused Mosquitto run again (SIGCONT). */
  resume(): void;
  /** `stop()`, then removes the temporary directory. */
  close(): Promise<void>;
  /** Mosquitto's log, for failure messages. */
  log(): string;
}

async function run(cmd: string, args: string[], cwd?: string): Promise<void> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    ...(cwd === undefined ? {} : { cwd }),
  }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr);
    throw new Error(`${cmd} ${args.join(" ")} failed: ${err}`);
  }
}

/** Makes a CA, a server certificate for 127.0.0.1/localhost and a client certificate. */
export async function makeCertificates(dir: string): Promise<Certificates> {
  if (OPENSSL === null) throw new Error("openssl is not installed");
  const ssl = OPENSSL;
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run(ssl, [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=smartmeter test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
  const leaf = async (name: string, cn: string, ext: string) => {
    await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
    await run(ssl, [
      "req",
      ...ec,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${cn}`,
    ], dir);
    await run(ssl, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    ], dir);
  };
  const server = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n" +
    "extendedKeyUsage=serverAuth\n";
  await leaf("server", "localhost", `${server}subjectAltName=IP:127.0.0.1,DNS:localhost\n`);
  await leaf("wrong", "wrong.example", `${server}subjectAltName=DNS:wrong.example\n`);
  await leaf(
    "client",
    "smartmeter-client",
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n" +
      "extendedKeyUsage=clientAuth\n",
  );
  return {
    ca: `${dir}/ca.crt`,
    serverCert: `${dir}/server.crt`,
    serverKey: `${dir}/server.key`,
    wrongHostCert: `${dir}/wrong.crt`,
    wrongHostKey: `${dir}/wrong.key`,
    clientCert: `${dir}/client.crt`,
    clientKey: `${dir}/client.key`,
  };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function waitForPort(port: number, process: Deno.ChildProcess, log: () => string) {
  const deadline = Date.now() + 10_000;
  let exited = false;
  process.status.then(() => exited = true);
  while (Date.now() < deadline) {
    if (exited) throw new Error(`mosquitto exited at start:\n${log()}`);
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`mosquitto did not accept connections on port ${port}:\n${log()}`);
}

/** Starts a broker; stop it in a `finally` block. */
export async function startBroker(options: BrokerOptions = {}): Promise<Broker> {
  if (MOSQUITTO === null) throw new Error("mosquitto is not installed");
  const mosquitto = MOSQUITTO;
  const dir = await Deno.makeTempDir({ prefix: "smartmeter-mosquitto-" });
  const port = freePort();
  const lines = [
    `listener ${port} 127.0.0.1`,
    "persistence false",
    `log_dest file ${dir}/mosquitto.log`,
    "log_type all",
    "connection_messages true",
  ];
  if (Deno.uid() === 0) lines.push("user root");
  if (options.users !== undefined) {
    const file = `${dir}/passwd`;
    let first = true;
    for (const [user, password] of Object.entries(options.users)) {
      await run(MOSQUITTO_PASSWD!, [...(first ? ["-c"] : []), "-b", file, user, password]);
      first = false;
    }
    lines.push("allow_anonymous false", `password_file ${file}`);
  } else {
    lines.push("allow_anonymous true");
  }
  if (options.acl !== undefined) {
    await Deno.writeTextFile(`${dir}/acl`, options.acl);
    lines.push(`acl_file ${dir}/acl`);
  }
  if (options.tls !== undefined) {
    const { certs, requireCertificate, wrongHost } = options.tls;
    lines.push(
      `cafile ${certs.ca}`,
      `certfile ${wrongHost ? certs.wrongHostCert : certs.serverCert}`,
      `keyfile ${wrongHost ? certs.wrongHostKey : certs.serverKey}`,
      `require_certificate ${requireCertificate ? "true" : "false"}`,
    );
  }
  await Deno.writeTextFile(`${dir}/mosquitto.conf`, lines.join("\n") + "\n");

  let child: Deno.ChildProcess | null = null;
  const log = () => {
    try {
      return Deno.readTextFileSync(`${dir}/mosquitto.log`);
    } catch {
      return "(no log)";
    }
  };
  const broker: Broker = {
    port,
    dir,
    log,
    async start() {
      if (child !== null) throw new Error("mosquitto is already running");
      child = new Deno.Command(mosquitto, {
        args: ["-c", `${dir}/mosquitto.conf`],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        await waitForPort(port, child, log);
      } catch (e) {
        await broker.close();
        throw e;
      }
    },
    async stop() {
      const c = child;
      if (c === null) return;
      child = null;
      try {
        c.kill("SIGCONT"); // a paused broker could not act on the SIGTERM
        c.kill("SIGTERM");
      } catch {
        // already exited
      }
      await c.status;
    },
    pause() {
      child?.kill("SIGSTOP");
    },
    resume() {
      child?.kill("SIGCONT");
    },
    async close() {
      await broker.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  await broker.start();
  return broker;
}

/** The device a test sink announces: the default device id, no meter details yet. */
export const TEST_DEVICE: DeviceInfo = {
  deviceId: "smartmeter",
  name: "Smart Meter",
  prefix: "",
  discoveryPrefix: "homeassistant",
  manufacturer: null,
  model: null,
  serialNumber: null,
  swVersion: "test",
};

/**
 * The MQTT part of a config for a sink talking to the test broker on `port`: no user,
 * every other key at its default, `publish_interval: 0`; `over` changes any of it.
 */
export function mqttTestConfig(port: number, over: Partial<MqttConfig> = {}): MqttConfig {
  return {
    host: "127.0.0.1",
    port,
    user: null,
    password: null,
    keepalive: 60,
    prefix: "",
    deviceId: "smartmeter",
    name: "Smart Meter",
    publishInterval: 0,
    discoveryPrefix: "homeassistant",
    tls: false,
    tlsCa: null,
    tlsCert: null,
    tlsKey: null,
    tlsInsecure: false,
    clientId: "smartmeter-smartmeter",
    protocolVersion: 4,
    ...over,
  };
}
