/**
 * Deleting retained messages: an empty retained payload makes the broker forget the
 * topic's retained message, and an empty discovery payload makes Home Assistant remove
 * the device. `demo --mqtt` uses it on exit, so that its simulated meter leaves no ghost
 * device behind.
 *
 * ```
 *  CONNECT (own client id "<client_id>-clear", no will)
 *  PUBLISH <topic> "" (QoS 1, retained) … for every topic, in order; each PUBACK awaited
 *  DISCONNECT
 * ```
 *
 * @module
 */

import mqtt from "mqtt";
import { describeMqttError, mqttClientOptions, type MqttConfig } from "./mqtt.ts";

/**
 * Publishes an empty retained payload to each of `topics`, in order. Resolves null when the
 * broker acknowledged all of them, else what went wrong (never a password).
 */
export async function clearRetained(
  c: MqttConfig,
  topics: readonly string[],
  timeoutMs = 5_000,
): Promise<string | null> {
  const url = `${c.tls ? "mqtts" : "mqtt"}://${c.host}:${c.port}`;
  let client;
  try {
    client = mqtt.connect({
      ...mqttClientOptions(c, null),
      clientId: `${c.clientId}-clear`,
      connectTimeout: timeoutMs,
    });
  } catch (e) {
    return (e as Error).message;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(
        () => resolve(`No answer from the MQTT broker ${url} within ${timeoutMs / 1000} s`),
        timeoutMs,
      );
    });
    const failed = new Promise<string>((resolve) => {
      client.on("error", (e) => resolve(describeMqttError(e, url).message));
    });
    const cleared = (async () => {
      await new Promise<void>((resolve) => client.once("connect", () => resolve()));
      for (const topic of topics) await client.publishAsync(topic, "", { qos: 1, retain: true });
      return null;
    })();
    return await Promise.race([cleared, failed, timeout]);
  } catch (e) {
    return (e as Error).message;
  } finally {
    clearTimeout(timer);
    await client.endAsync(true).catch(() => {});
  }
}
