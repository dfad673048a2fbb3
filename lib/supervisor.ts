/**
 * The Home Assistant Supervisor's services API: inside the add-on, an empty `mqtt.host`
 * means "use the broker Home Assistant knows" (the Mosquitto add-on, usually).
 *
 * `GET http://supervisor/services/mqtt` with `Authorization: Bearer $SUPERVISOR_TOKEN`
 * answers `{"result": "ok", "data": {"host", "port", "ssl", "username", "password",
 * "protocol"}}` when the add-on declares `services: mqtt:need`.
 *
 * @module
 */

/** What the Supervisor says about the MQTT service. */
export interface SupervisorMqtt {
  host: string;
  port: number;
  ssl: boolean;
  username: string | null;
  password: string | null;
  protocol: string | null;
}

/** Asks the Supervisor for the MQTT broker. @throws {Error} naming what went wrong */
export async function supervisorMqtt(
  token: string,
  baseUrl = "http://supervisor",
  fetchFn: typeof fetch = fetch,
): Promise<SupervisorMqtt> {
  let res: Response;
  try {
    res = await fetchFn(`${baseUrl}/services/mqtt`, {
      headers: { Authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(10_000),
    });
  } catch (e) {
    throw new Error(`Cannot reach the Supervisor at ${baseUrl}: ${(e as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) {
    throw new Error(
      `The Supervisor has no MQTT service for this add-on (HTTP ${res.status}): install the Mosquitto broker add-on, or set mqtt.host`,
    );
  }
  let body: { data?: Record<string, unknown> };
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error("The Supervisor's answer about MQTT is not JSON");
  }
  const d = body.data ?? {};
  if (typeof d.host !== "string" || d.host === "") {
    throw new Error("The Supervisor's answer about MQTT names no host");
  }
  const port = d.port === undefined || d.port === null ? 1883 : Number(d.port);
  const written = typeof d.port === "number" || typeof d.port === "string";
  if (
    !written && d.port !== undefined && d.port !== null || !Number.isInteger(port) ||
    port < 1 || port > 65535 || d.port === ""
  ) {
    throw new Error(
      `The Supervisor's answer about MQTT has a malformed port: ${JSON.stringify(d.port)} ` +
        "(expected 1 to 65535): restart the Mosquitto broker add-on, or set mqtt.host and " +
        "mqtt.port",
    );
  }
  return {
    host: d.host,
    port,
    ssl: d.ssl === true,
    username: typeof d.username === "string" ? d.username : null,
    password: typeof d.password === "string" ? d.password : null,
    protocol: typeof d.protocol === "string" ? d.protocol : null,
  };
}
