/**
 * What the README promises about Home Assistant matches what Home Assistant does.
 */

import { match, ok as assert } from "node:assert/strict";

const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));

function section(title: string): string {
  const start = readme.indexOf(`## ${title}`);
  assert(start >= 0, `README has a "${title}" section`);
  const end = readme.indexOf("\n## ", start + 3);
  return readme.slice(start, end < 0 ? undefined : end);
}

Deno.test("the README's migration section says what Home Assistant does with names and ids", () => {
  const text = section("Moving from the Python add-on").replace(/\s+/g, " ");
  // The entity registry keys on the unique_id: the entity id, the unit, the history and
  // the user's own settings stay. The name it shows is the one discovery sends (device
  // name + entity name) unless the user gave the entity a name of their own.
  match(
    text,
    /entity ids?, (the )?`?unique_id`?s?, units and (the )?(Energy-dashboard )?history carry on/i,
  );
  match(text, /unless you renamed/i);
  assert(!/keep the names/i.test(text), "names do not stay as they were");
});
