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
  return {
    host: d.host,
    port: typeof d.port === "number" ? d.port : Number(d.port ?? 1883),
    ssl: d.ssl === true,
    username: typeof d.username === "string" ? d.username : null,
    password: typeof d.password === "string" ? d.password : null,
    protocol: typeof d.protocol === "string" ? d.protocol : null,
  };
}
