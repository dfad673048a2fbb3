/**
 * DLMS security suite 0 (and 1, which uses the same AES-128-GCM for data): decryption and
 * GCM tag check of ciphered APDUs, and encryption for the simulator (Green Book §9.2.7.2,
 * NIST SP 800-38D). Web Crypto only.
 *
 * ```
 *   IV (12)            = system title (8) ‖ invocation counter (4, big-endian)
 *   first counter (16) = IV ‖ 00 00 00 02       (J0 = IV ‖ 00000001 masks the tag)
 *   tag, SC 0x30       = GCM(EK, IV, AAD = SC ‖ AK, plaintext), first 12 bytes
 *   tag, SC 0x10       = GCM(EK, IV, AAD = SC ‖ AK ‖ APDU, empty plaintext), first 12 bytes
 * ```
 *
 * Web Crypto's AES-GCM wants the whole 16-byte tag and DLMS sends 12 bytes (or none), so
 * decryption is AES-CTR from the first counter block above, which is exactly the GCM
 * keystream. When a tag is present and an authentication key is configured, the tag is
 * recomputed by GCM-encrypting the recovered plaintext, and its first 12 bytes compared in
 * constant time with the tag sent. A tag without an authentication key is not checked: the
 * frame is still decrypted and reported as only "encrypted".
 *
 * Key bytes never appear in any message.
 *
 * @module
 */

import { hex2, pushBerLength } from "../bytes.ts";
import { DecryptError } from "../errors.ts";
import {
  ApduTag,
  AUTH_TAG_LENGTH,
  type CipheredApdu,
  isServiceSpecificCiphering,
  looksLikePlainApdu,
  SecurityControl,
  SYSTEM_TITLE_LENGTH,
} from "./apdu.ts";

/** What protection a decrypted frame actually had (and we could check). */
export type SecurityLevel = "none" | "encrypted" | "encrypted+authenticated" | "authenticated";

/** AES-128 keys only: suites 0 and 1. */
const KEY_LENGTH = 16;
const IV_LENGTH = 12;
const BLOCK_LENGTH = 16;
/** GCM encrypts data from counter 2: counter 1 masks the tag. */
const FIRST_DATA_COUNTER = 2;
/** GCM increments only the last 32 bits of the counter block. */
const COUNTER_BITS = 32;
const FULL_TAG_BITS = 128;
const MAX_INVOCATION_COUNTER = 0xffff_ffff;
/** Suite ids that mean AES-128-GCM here (TINETZ/VKW Kaifa send suite 1: SC 0x21). */
const MAX_SUITE = 1;

/** A byte array Web Crypto accepts (backed by a plain, not shared, ArrayBuffer). */
function buf(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer
    ? bytes as Uint8Array<ArrayBuffer>
    : new Uint8Array(bytes);
}

function nonce(systemTitle: Uint8Array, invocationCounter: number): Uint8Array<ArrayBuffer> {
  const iv = new Uint8Array(IV_LENGTH);
  iv.set(systemTitle);
  new DataView(iv.buffer).setUint32(SYSTEM_TITLE_LENGTH, invocationCounter);
  return iv;
}

function firstCounterBlock(iv: Uint8Array): Uint8Array<ArrayBuffer> {
  const block = new Uint8Array(BLOCK_LENGTH);
  block.set(iv);
  block[BLOCK_LENGTH - 1] = FIRST_DATA_COUNTER;
  return block;
}

/** Compares the first 12 bytes without an early exit. */
function tagsEqual(expected: Uint8Array, sent: Uint8Array): boolean {
  if (expected.length < AUTH_TAG_LENGTH || sent.length !== AUTH_TAG_LENGTH) return false;
  let diff = 0;
  for (let i = 0; i < AUTH_TAG_LENGTH; i++) diff |= expected[i]! ^ sent[i]!;
  return diff === 0;
}

function berBytes(n: number): number[] {
  const out: number[] = [];
  pushBerLength(n, out);
  return out;
}

function checkSecurityControl(sc: number): void {
  if ((sc & SecurityControl.COMPRESSED) !== 0) {
    throw new DecryptError(
      `Unsupported security control 0x${hex2(sc)}: compressed APDUs (bit 0x80) are not supported`,
    );
  }
  const suite = sc & SecurityControl.SUITE_MASK;
  if (suite > MAX_SUITE) {
    throw new DecryptError(
      `Unsupported security suite ${suite} (security control 0x${hex2(sc)}): only suites 0 ` +
        `and 1 (AES-128-GCM) are supported`,
    );
  }
}

function checkSystemTitle(systemTitle: Uint8Array): void {
  if (systemTitle.length !== SYSTEM_TITLE_LENGTH) {
    throw new DecryptError(
      `Bad system title: ${systemTitle.length} bytes, must be ${SYSTEM_TITLE_LENGTH}`,
    );
  }
}

/** The keys of one meter, imported once, and the operations that use them. */
export class SecurityContext {
  readonly #ctrKey: CryptoKey;
  readonly #gcmKey: CryptoKey;
  readonly #authKey: Uint8Array | null;

  private constructor(ctrKey: CryptoKey, gcmKey: CryptoKey, authKey: Uint8Array | null) {
    this.#ctrKey = ctrKey;
    this.#gcmKey = gcmKey;
    this.#authKey = authKey;
  }

  /**
   * Imports the keys (once: never per telegram).
   * @param key the encryption key (GUEK), 16 bytes
   * @param authKey the authentication key (GAK), 16 bytes; null or empty for none
   * @throws {RangeError} when a key is not 16 bytes long
   */
  static async create(key: Uint8Array, authKey?: Uint8Array | null): Promise<SecurityContext> {
    if (key.length !== KEY_LENGTH) {
      throw new RangeError(
        `Bad encryption key (GUEK): ${key.length} bytes, must be ${KEY_LENGTH} (32 hex digits)`,
      );
    }
    const ak = authKey && authKey.length > 0 ? authKey.slice() : null;
    if (ak !== null && ak.length !== KEY_LENGTH) {
      throw new RangeError(
        `Bad authentication key (GAK): ${ak.length} bytes, must be ${KEY_LENGTH} (32 hex digits)`,
      );
    }
    const raw = buf(key);
    const [ctrKey, gcmKey] = await Promise.all([
      crypto.subtle.importKey("raw", raw, "AES-CTR", false, ["encrypt", "decrypt"]),
      crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt"]),
    ]);
    return new SecurityContext(ctrKey, gcmKey, ak);
  }

  /** Whether an authentication key is configured, so tags are verified. */
  get verifiesTags(): boolean {
    return this.#authKey !== null;
  }

  /**
   * Decrypts a ciphered APDU and, when it carries a tag and an authentication key is
   * configured, verifies the tag.
   *
   * @param systemTitle the sender's system title: `apdu.systemTitle` for general ciphering,
   *   the one known out of band for service-specific APDUs
   * @throws {DecryptError} for an unsupported security control byte, a tag that does not
   *   match, or a plaintext that is no DLMS APDU (wrong key)
   */
  async decrypt(
    apdu: CipheredApdu,
    systemTitle: Uint8Array,
  ): Promise<{ plaintext: Uint8Array; security: SecurityLevel }> {
    const sc = apdu.securityControl;
    checkSecurityControl(sc);
    checkSystemTitle(systemTitle);
    const iv = nonce(systemTitle, apdu.invocationCounter);
    const plaintext = apdu.encrypted
      ? new Uint8Array(
        await crypto.subtle.decrypt(
          { name: "AES-CTR", counter: firstCounterBlock(iv), length: COUNTER_BITS },
          this.#ctrKey,
          buf(apdu.ciphertext),
        ),
      )
      : apdu.ciphertext;

    if (apdu.authTag !== null && this.#authKey !== null) {
      const expected = await this.#tag(iv, sc, plaintext, apdu.encrypted, this.#authKey);
      if (!tagsEqual(expected, apdu.authTag)) throw tagMismatch(apdu.encrypted, plaintext);
      return { plaintext, security: apdu.encrypted ? "encrypted+authenticated" : "authenticated" };
    }
    if (apdu.encrypted && !looksLikePlainApdu(plaintext)) {
      throw new DecryptError(
        `Decryption gave no DLMS APDU (first byte ${firstByte(plaintext)}): wrong key (GUEK) ` +
          `or damaged frame`,
      );
    }
    return { plaintext, security: apdu.encrypted ? "encrypted" : "none" };
  }

  /**
   * Builds a whole ciphering APDU: general-glo (0xDB, the default) or general-ded (0xDC)
   * with the system title inside, or a service-specific one (0xC8..0xD7) without it.
   *
   * @throws {RangeError} for a bad tag, system title or invocation counter
   * @throws {Error} when the security control asks for a tag and no authentication key is
   *   configured
   */
  async encrypt(
    plaintext: Uint8Array,
    opts: {
      systemTitle: Uint8Array;
      invocationCounter: number;
      securityControl: number;
      tag?: number;
    },
  ): Promise<Uint8Array> {
    const { systemTitle, invocationCounter: ic, securityControl: sc } = opts;
    const tag = opts.tag ?? ApduTag.GENERAL_GLO_CIPHERING;
    const general = tag === ApduTag.GENERAL_GLO_CIPHERING ||
      tag === ApduTag.GENERAL_DED_CIPHERING;
    if (!general && !isServiceSpecificCiphering(tag)) {
      throw new RangeError(`Not a ciphering APDU tag: 0x${hex2(tag & 0xff)}`);
    }
    if (!Number.isInteger(ic) || ic < 0 || ic > MAX_INVOCATION_COUNTER) {
      throw new RangeError(`Bad invocation counter ${ic}: must be an integer 0..4294967295`);
    }
    if (systemTitle.length !== SYSTEM_TITLE_LENGTH) {
      throw new RangeError(
        `Bad system title: ${systemTitle.length} bytes, must be ${SYSTEM_TITLE_LENGTH}`,
      );
    }
    checkSecurityControl(sc);
    const encrypted = (sc & SecurityControl.ENCRYPTED) !== 0;
    const authenticated = (sc & SecurityControl.AUTHENTICATED) !== 0;
    if (authenticated && this.#authKey === null) {
      throw new Error(
        `Cannot authenticate: security control 0x${hex2(sc)} asks for a GCM tag and no ` +
          `authentication key (GAK) is configured`,
      );
    }
    const iv = nonce(systemTitle, ic);
    const data = encrypted
      ? new Uint8Array(
        await crypto.subtle.encrypt(
          { name: "AES-CTR", counter: firstCounterBlock(iv), length: COUNTER_BITS },
          this.#ctrKey,
          buf(plaintext),
        ),
      )
      : plaintext;
    const authTag = authenticated
      ? (await this.#tag(iv, sc, plaintext, encrypted, this.#authKey!)).subarray(
        0,
        AUTH_TAG_LENGTH,
      )
      : new Uint8Array(0);

    const contentLength = 1 + 4 + data.length + authTag.length;
    const header = general
      ? [tag, SYSTEM_TITLE_LENGTH, ...systemTitle, ...berBytes(contentLength)]
      : [tag, ...berBytes(contentLength)];
    const out = new Uint8Array(header.length + contentLength);
    out.set(header);
    let at = header.length;
    out[at++] = sc;
    new DataView(out.buffer).setUint32(at, ic);
    at += 4;
    out.set(data, at);
    out.set(authTag, at + data.length);
    return out;
  }

  /** The full 16-byte GCM tag (DLMS sends the first 12). */
  async #tag(
    iv: Uint8Array<ArrayBuffer>,
    sc: number,
    plaintext: Uint8Array,
    encrypted: boolean,
    authKey: Uint8Array,
  ): Promise<Uint8Array> {
    const aadLength = 1 + authKey.length + (encrypted ? 0 : plaintext.length);
    const aad = new Uint8Array(aadLength);
    aad[0] = sc;
    aad.set(authKey, 1);
    if (!encrypted) aad.set(plaintext, 1 + authKey.length);
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData: aad, tagLength: FULL_TAG_BITS },
        this.#gcmKey,
        encrypted ? buf(plaintext) : new Uint8Array(0),
      ),
    );
    return sealed.subarray(sealed.length - FULL_TAG_BITS / 8);
  }
}

function firstByte(bytes: Uint8Array): string {
  const b = bytes[0];
  return b === undefined ? "none: empty" : `0x${hex2(b)}`;
}

function tagMismatch(encrypted: boolean, plaintext: Uint8Array): DecryptError {
  if (!encrypted) {
    return new DecryptError(
      "GCM tag does not match: wrong authentication key (GAK), wrong key (GUEK) or altered " +
        "frame",
    );
  }
  if (looksLikePlainApdu(plaintext)) {
    // The plaintext makes sense, so the encryption key is right: the tag is what is wrong.
    return new DecryptError(
      "GCM tag does not match: wrong authentication key (GAK) or altered frame",
    );
  }
  return new DecryptError(
    `GCM tag does not match and decryption gave no DLMS APDU (first byte ` +
      `${firstByte(plaintext)}): wrong key (GUEK) or damaged frame`,
  );
}
