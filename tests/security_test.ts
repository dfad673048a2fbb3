import { fixture as loadFixture, hdlcInfos, mbusData } from "./fixtures.ts";
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { concatBytes, fromHex, toHex } from "../lib/bytes.ts";
import { DecryptError } from "../lib/errors.ts";
import { type CipheredApdu, parseApdu } from "../lib/dlms/apdu.ts";
import { SecurityContext } from "../lib/dlms/security.ts";
import { BlockTransfer } from "../lib/dlms/transfer.ts";

interface Fixture {
  hex: string;
  key: string | null;
  auth_key: string | null;
  framing: string;
  system_title?: string;
  plaintext_apdu_hex?: string;
}

function fixture(name: string): Fixture {
  return loadFixture(name).raw as unknown as Fixture;
}

/** The APDU a fixture carries, unwrapped from its framing (and block transfer). */
function rawApdu(fx: Fixture): Uint8Array {
  const wire = fromHex(fx.hex);
  if (fx.framing === "mbus") return mbusData(wire);
  if (fx.framing !== "hdlc") return wire;
  const infos = hdlcInfos(wire);
  if (infos[0]![0] !== 0xe0) return concatBytes(infos);
  const transfer = new BlockTransfer();
  for (const info of infos) {
    const block = parseApdu(info);
    if (block.kind !== "block") throw new Error("expected a block");
    const r = transfer.push(block);
    if (r.status === "complete") return r.apdu;
  }
  throw new Error("incomplete block transfer");
}

function ciphered(bytes: Uint8Array): CipheredApdu {
  const apdu = parseApdu(bytes);
  if (apdu.kind !== "ciphered") throw new Error(`expected a ciphered APDU, got ${apdu.kind}`);
  return apdu;
}

async function context(fx: Fixture, withAuthKey = true): Promise<SecurityContext> {
  return await SecurityContext.create(
    fromHex(fx.key!),
    withAuthKey && fx.auth_key ? fromHex(fx.auth_key) : null,
  );
}

function titleOf(fx: Fixture, apdu: CipheredApdu): Uint8Array {
  return apdu.systemTitle ?? fromHex(fx.system_title!);
}

/** Rejects with a DecryptError whose message matches, and which holds no key bytes. */
async function rejectsDecrypt(
  p: Promise<unknown>,
  message: RegExp,
  keys: readonly (string | null)[],
): Promise<void> {
  await rejects(p, (e: unknown) => {
    ok(e instanceof DecryptError, `not a DecryptError: ${e}`);
    equal(e.layer, "decrypt");
    ok(message.test(e.message), `message: ${e.message}`);
    for (const k of keys) {
      if (k) ok(!e.message.toLowerCase().includes(k.toLowerCase()), "key bytes in message");
    }
    return true;
  });
}

const GREENBOOK = fixture("greenbook_glo-get-request_1");
const LUX = fixture("luxembourg_sagemcom-t210d-smarty_1");
const NOE = fixture("netznoe_kaifa-ma309_1");
const E450 = fixture("austria_landis-gyr-e450_1");

Deno.test("decrypt() reproduces the Green Book AES-GCM example", async () => {
  const ctx = await context(GREENBOOK);
  const apdu = ciphered(fromHex(GREENBOOK.hex));
  const { plaintext, security } = await ctx.decrypt(apdu, fromHex(GREENBOOK.system_title!));
  equal(toHex(plaintext), GREENBOOK.plaintext_apdu_hex);
  equal(security, "encrypted+authenticated");
});

Deno.test("encrypt() reproduces the Green Book wire bytes exactly", async () => {
  const ctx = await context(GREENBOOK);
  const wire = await ctx.encrypt(fromHex(GREENBOOK.plaintext_apdu_hex!), {
    systemTitle: fromHex(GREENBOOK.system_title!),
    invocationCounter: 0x01234567,
    securityControl: 0x30,
    tag: 0xc8,
  });
  equal(toHex(wire), GREENBOOK.hex);
});

Deno.test("decrypt() turns every encrypted fixture into its plaintext APDU", async (t) => {
  const cases: [string, string][] = [
    ["greenbook_glo-get-request_1", "encrypted+authenticated"],
    ["austria_landis-gyr-e450_1", "encrypted+authenticated"],
    ["denmark_kamstrup-omnipower_1", "encrypted+authenticated"],
    ["luxembourg_sagemcom-t210d-smarty_1", "encrypted+authenticated"],
    ["netznoe_kaifa-ma309_1", "encrypted"],
    ["netznoe_sagemcom-t210d_2", "encrypted"],
    ["vorarlberg_kaifa-ma309m_1", "encrypted"],
    ["wienernetze_landis-gyr-e450_1", "encrypted"],
  ];
  for (const [name, level] of cases) {
    await t.step(name, async () => {
      const fx = fixture(name);
      const apdu = ciphered(rawApdu(fx));
      const { plaintext, security } = await (await context(fx)).decrypt(apdu, titleOf(fx, apdu));
      equal(toHex(plaintext), fx.plaintext_apdu_hex);
      equal(security, level);
    });
  }
});

Deno.test("decrypt() verifies the Netz Burgenland tag and yields its structure(14)", async () => {
  const fx = fixture("burgenland_landis-gyr-e450_1");
  const apdu = ciphered(rawApdu(fx));
  equal(apdu.securityControl, 0x30);
  const { plaintext, security } = await (await context(fx)).decrypt(apdu, apdu.systemTitle!);
  equal(security, "encrypted+authenticated");
  const inner = parseApdu(plaintext);
  if (inner.kind !== "data-notification") throw new Error(inner.kind);
  equal(inner.body.type, "structure");
  if (inner.body.type === "structure") equal(inner.body.items.length, 14);
});

Deno.test("encrypt() reproduces real ciphering APDUs byte for byte", async (t) => {
  const cases: [string, number][] = [
    ["luxembourg_sagemcom-t210d-smarty_1", 0x30], // 82 02 7a, tag
    ["netznoe_kaifa-ma309_1", 0x20], // 81 f8, no tag
    ["vorarlberg_kaifa-ma309m_1", 0x21], // 82 01 55, suite 1
    ["austria_landis-gyr-e450_1", 0x30], // reassembled from three blocks
  ];
  for (const [name, sc] of cases) {
    await t.step(name, async () => {
      const fx = fixture(name);
      const wire = rawApdu(fx);
      const apdu = ciphered(wire);
      const out = await (await context(fx)).encrypt(fromHex(fx.plaintext_apdu_hex!), {
        systemTitle: apdu.systemTitle!,
        invocationCounter: apdu.invocationCounter,
        securityControl: sc,
      });
      equal(toHex(out), toHex(wire));
    });
  }
});

Deno.test("decrypt() reports only 'encrypted' when a tag comes without an auth key", async () => {
  const apdu = ciphered(fromHex(LUX.hex));
  ok(apdu.authTag !== null);
  const { plaintext, security } = await (await context(LUX, false)).decrypt(
    apdu,
    apdu.systemTitle!,
  );
  equal(security, "encrypted");
  equal(toHex(plaintext), LUX.plaintext_apdu_hex);
});

Deno.test("decrypt() refuses a tampered tag byte as a wrong GAK or altered frame", async () => {
  const wire = fromHex(LUX.hex);
  wire[wire.length - 1]! ^= 0x01;
  const apdu = ciphered(wire);
  await rejectsDecrypt(
    (await context(LUX)).decrypt(apdu, apdu.systemTitle!),
    /^GCM tag does not match: wrong authentication key \(GAK\) or altered frame$/,
    [LUX.key, LUX.auth_key],
  );
});

Deno.test("decrypt() refuses a tampered ciphertext byte", async (t) => {
  await t.step("inside the data: the plaintext still looks right, the tag does not", async () => {
    const wire = fromHex(LUX.hex);
    wire[100]! ^= 0x40;
    const apdu = ciphered(wire);
    await rejectsDecrypt(
      (await context(LUX)).decrypt(apdu, apdu.systemTitle!),
      /^GCM tag does not match: wrong authentication key \(GAK\) or altered frame$/,
      [LUX.key, LUX.auth_key],
    );
  });
  await t.step("in the first byte: no APDU and no tag", async () => {
    const wire = fromHex(LUX.hex);
    const firstCiphertextByte = 1 + 1 + 8 + 3 + 1 + 4;
    wire[firstCiphertextByte]! ^= 0x75; // "/" (0x2f) becomes 0x5a
    const apdu = ciphered(wire);
    await rejectsDecrypt(
      (await context(LUX)).decrypt(apdu, apdu.systemTitle!),
      /^GCM tag does not match and decryption gave no DLMS APDU \(first byte 0x5a\): wrong key \(GUEK\) or damaged frame$/,
      [LUX.key, LUX.auth_key],
    );
  });
});

Deno.test("decrypt() refuses a wrong authentication key", async () => {
  const ctx = await SecurityContext.create(fromHex(E450.key!), fromHex(GREENBOOK.auth_key!));
  const apdu = ciphered(rawApdu(E450));
  await rejectsDecrypt(
    ctx.decrypt(apdu, apdu.systemTitle!),
    /^GCM tag does not match: wrong authentication key \(GAK\) or altered frame$/,
    [E450.key, GREENBOOK.auth_key],
  );
});

Deno.test("decrypt() names a wrong encryption key", async (t) => {
  const wrongKey = "000102030405060708090a0b0c0d0e0f";
  await t.step("no tag: the plaintext is no APDU", async () => {
    const ctx = await SecurityContext.create(fromHex(wrongKey));
    const apdu = ciphered(rawApdu(NOE));
    await rejectsDecrypt(
      ctx.decrypt(apdu, apdu.systemTitle!),
      /^Decryption gave no DLMS APDU \(first byte 0x[0-9a-f]{2}\): wrong key \(GUEK\) or damaged frame$/,
      [wrongKey, NOE.key],
    );
  });
  await t.step("with a tag and the right auth key", async () => {
    const ctx = await SecurityContext.create(fromHex(wrongKey), fromHex(E450.auth_key!));
    const apdu = ciphered(rawApdu(E450));
    await rejectsDecrypt(
      ctx.decrypt(apdu, apdu.systemTitle!),
      /^GCM tag does not match and decryption gave no DLMS APDU \(first byte 0x[0-9a-f]{2}\): wrong key \(GUEK\) or damaged frame$/,
      [wrongKey, E450.auth_key],
    );
  });
  await t.step("with a tag and no auth key", async () => {
    const ctx = await SecurityContext.create(fromHex(wrongKey));
    const apdu = ciphered(rawApdu(E450));
    await rejectsDecrypt(
      ctx.decrypt(apdu, apdu.systemTitle!),
      /^Decryption gave no DLMS APDU \(first byte 0x[0-9a-f]{2}\): wrong key \(GUEK\)/,
      [wrongKey],
    );
  });
});

Deno.test("decrypt() reports an empty plaintext as no APDU", async () => {
  const ctx = await context(NOE);
  const apdu = ciphered(fromHex("db08" + "4b464d6750000009" + "05" + "2000000001"));
  await rejectsDecrypt(
    ctx.decrypt(apdu, apdu.systemTitle!),
    /^Decryption gave no DLMS APDU \(first byte none: empty\)/,
    [NOE.key],
  );
});

Deno.test("authenticated-only frames (SC 0x10) round-trip and verify", async () => {
  const ctx = await context(GREENBOOK);
  const title = fromHex(GREENBOOK.system_title!);
  const plain = fromHex(GREENBOOK.plaintext_apdu_hex!);
  const wire = await ctx.encrypt(plain, {
    systemTitle: title,
    invocationCounter: 7,
    securityControl: 0x10,
  });
  // DB 08 <title> len SC IC <plaintext in clear> <tag 12>
  equal(toHex(wire.subarray(0, 10)), "db08" + GREENBOOK.system_title!.toLowerCase());
  equal(wire[10], 5 + plain.length + 12);
  equal(toHex(wire.subarray(16, 16 + plain.length)), toHex(plain));
  const apdu = ciphered(wire);
  deepEqual(await ctx.decrypt(apdu, title), { plaintext: plain, security: "authenticated" });

  const noAuthKey = await context(GREENBOOK, false);
  equal((await noAuthKey.decrypt(apdu, title)).security, "none");

  const tampered = wire.slice();
  tampered[16]! ^= 0x01;
  await rejectsDecrypt(
    ctx.decrypt(ciphered(tampered), title),
    /^GCM tag does not match: wrong authentication key \(GAK\), wrong key \(GUEK\) or altered frame$/,
    [GREENBOOK.key, GREENBOOK.auth_key],
  );
});

Deno.test("decrypt() passes a frame without security bits through as 'none'", async () => {
  const ctx = await context(NOE);
  const plain = fromHex("0f0000000100" + "1100");
  const wire = await ctx.encrypt(plain, {
    systemTitle: fromHex("4b464d6750000009"),
    invocationCounter: 1,
    securityControl: 0x00,
  });
  equal(toHex(wire), "db084b464d6750000009" + "0d" + "0000000001" + toHex(plain));
  deepEqual(await ctx.decrypt(ciphered(wire), fromHex("4b464d6750000009")), {
    plaintext: plain,
    security: "none",
  });
});

Deno.test("encrypt() builds general-ded-ciphering (0xDC) that decrypts again", async () => {
  const ctx = await context(E450);
  const title = fromHex("4c475a6773700001");
  const plain = fromHex(E450.plaintext_apdu_hex!);
  const wire = await ctx.encrypt(plain, {
    systemTitle: title,
    invocationCounter: 0xfffffffe,
    securityControl: 0x30,
    tag: 0xdc,
  });
  equal(wire[0], 0xdc);
  const apdu = ciphered(wire);
  equal(apdu.service, "general-ded");
  equal(apdu.invocationCounter, 0xfffffffe);
  deepEqual(await ctx.decrypt(apdu, title), {
    plaintext: plain,
    security: "encrypted+authenticated",
  });
});

Deno.test("decrypt() refuses what it cannot decrypt", async (t) => {
  const ctx = await context(NOE);
  const base = ciphered(rawApdu(NOE));
  await t.step("compression", async () => {
    await rejectsDecrypt(
      ctx.decrypt({ ...base, securityControl: 0xa0, compressed: true }, base.systemTitle!),
      /^Unsupported security control 0xa0: compressed APDUs \(bit 0x80\) are not supported$/,
      [NOE.key],
    );
  });
  await t.step("suite 2", async () => {
    await rejectsDecrypt(
      ctx.decrypt({ ...base, securityControl: 0x22, suite: 2 }, base.systemTitle!),
      /^Unsupported security suite 2 \(security control 0x22\): only suites 0 and 1 \(AES-128-GCM\) are supported$/,
      [NOE.key],
    );
  });
  await t.step("a short system title", async () => {
    await rejectsDecrypt(
      ctx.decrypt(base, base.systemTitle!.subarray(1)),
      /^Bad system title: 7 bytes, must be 8$/,
      [NOE.key],
    );
  });
});

Deno.test("SecurityContext.create() refuses keys of the wrong length", async (t) => {
  await t.step("encryption key", async () => {
    await rejects(
      SecurityContext.create(new Uint8Array(15)),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message === "Bad encryption key (GUEK): 15 bytes, must be 16 (32 hex digits)",
    );
  });
  await t.step("authentication key", async () => {
    await rejects(
      SecurityContext.create(new Uint8Array(16), new Uint8Array(10)),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message === "Bad authentication key (GAK): 10 bytes, must be 16 (32 hex digits)",
    );
  });
  await t.step("an empty auth key means none", async () => {
    const ctx = await SecurityContext.create(new Uint8Array(16), new Uint8Array(0));
    equal(ctx.verifiesTags, false);
  });
});

Deno.test("encrypt() refuses bad arguments", async (t) => {
  const ctx = await context(NOE);
  const systemTitle = new Uint8Array(8);
  const plain = new Uint8Array([0x0f]);
  await t.step("not a ciphering tag", async () => {
    await rejects(
      ctx.encrypt(plain, { systemTitle, invocationCounter: 1, securityControl: 0x20, tag: 0xce }),
      (e: unknown) => e instanceof RangeError && e.message === "Not a ciphering APDU tag: 0xce",
    );
  });
  await t.step("invocation counter out of range", async () => {
    await rejects(
      ctx.encrypt(plain, { systemTitle, invocationCounter: 2 ** 32, securityControl: 0x20 }),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message === "Bad invocation counter 4294967296: must be an integer 0..4294967295",
    );
  });
  await t.step("system title", async () => {
    await rejects(
      ctx.encrypt(plain, {
        systemTitle: new Uint8Array(9),
        invocationCounter: 1,
        securityControl: 0x20,
      }),
      (e: unknown) =>
        e instanceof RangeError && e.message === "Bad system title: 9 bytes, must be 8",
    );
  });
  await t.step("a tag without an auth key", async () => {
    await rejects(
      ctx.encrypt(plain, { systemTitle, invocationCounter: 1, securityControl: 0x30 }),
      (e: unknown) =>
        e instanceof Error &&
        e.message ===
          "Cannot authenticate: security control 0x30 asks for a GCM tag and no " +
            "authentication key (GAK) is configured",
    );
  });
});

Deno.test("decrypt() imports no key per telegram", async () => {
  const ctx = await context(E450);
  const apdu = ciphered(rawApdu(E450));
  const subtle = crypto.subtle as SubtleCrypto & { importKey: SubtleCrypto["importKey"] };
  const original = subtle.importKey;
  let imports = 0;
  subtle.importKey = ((...args: Parameters<SubtleCrypto["importKey"]>) => {
    imports++;
    return original.apply(subtle, args);
  }) as SubtleCrypto["importKey"];
  let importsByCreate = 0;
  try {
    for (let i = 0; i < 5; i++) await ctx.decrypt(apdu, apdu.systemTitle!);
    equal(imports, 0);
    await context(E450); // the spy does see imports: create() makes them
    importsByCreate = imports;
  } finally {
    subtle.importKey = original;
  }
  equal(importsByCreate, 2);
});
