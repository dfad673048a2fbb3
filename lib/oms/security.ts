/**
 * OMS security mode 5 (OMS Vol. 2, EN 13757-7): AES-128-CBC over the encrypted blocks the
 * configuration field announces, without padding. Web Crypto only.
 *
 * ```
 *   IV (16)    = M ‖ ID ‖ version ‖ medium (8, the header's address, OMS order)
 *                ‖ ACC ‖ ACC ‖ ACC ‖ ACC ‖ ACC ‖ ACC ‖ ACC ‖ ACC
 *   plaintext  = 2F 2F (check bytes) records ... 2F filler up to the block boundary
 * ```
 *
 * The Netz OÖ specification's example: address `2D4C00000000010E`, ACC `0D`, IV
 * `2D4C00000000010E0D0D0D0D0D0D0D0D` ("AMIS-Zähler Kundenschnittstelle" 2021, 2.4.2.7).
 *
 * Web Crypto's AES-CBC always strips (on decryption) and adds (on encryption) PKCS#7
 * padding, and these frames have none. Decryption therefore appends one block that
 * decrypts to a full padding block: with C the last ciphertext block and P = 16 × 0x10,
 * the block E(P ⊕ C) (one AES-CBC encryption of P under IV C: its first output block)
 * decrypts to P ⊕ C, and CBC xors it with C, giving P, which Web Crypto removes. What
 * remains is exactly the plaintext of the frame's blocks. Encryption takes the first
 * blocks of Web Crypto's padded output: CBC output blocks never depend on later input.
 *
 * A wrong key gives a plaintext that does not begin with `2F 2F`: refused with a message
 * naming the key. Key bytes never appear in any message.
 *
 * @module
 */

import { concatBytes, hex2 } from "../bytes.ts";
import { DecryptError } from "../errors.ts";
import { OMS_BLOCK_LENGTH, OMS_MODE_AES_CBC, type OmsHeader } from "./header.ts";

const KEY_LENGTH = 16;
const ADDRESS_LENGTH = 8;
/** The check bytes every mode 5 plaintext begins with (and the filler byte). */
export const OMS_FILLER = 0x2f;
const CHECK_LENGTH = 2;
/** PKCS#7's byte for a whole block of padding. */
const FULL_PADDING = OMS_BLOCK_LENGTH;

/** A byte array Web Crypto accepts (backed by a plain, not shared, ArrayBuffer). */
function buf(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer
    ? bytes as Uint8Array<ArrayBuffer>
    : new Uint8Array(bytes);
}

/** The mode 5 IV: the header's address, then the access number eight times. */
export function omsIv(address: Uint8Array, access: number): Uint8Array<ArrayBuffer> {
  if (address.length !== ADDRESS_LENGTH) {
    throw new RangeError(`Bad OMS address: ${address.length} bytes, must be ${ADDRESS_LENGTH}`);
  }
  const iv = new Uint8Array(OMS_BLOCK_LENGTH);
  iv.set(address);
  iv.fill(access & 0xff, ADDRESS_LENGTH);
  return iv;
}

/** The key of one meter, imported once, and the mode 5 operations that use it. */
export class OmsSecurity {
  readonly #key: CryptoKey;

  private constructor(key: CryptoKey) {
    this.#key = key;
  }

  /**
   * Imports the key (once: never per telegram).
   * @throws {RangeError} when the key is not 16 bytes long
   */
  static async create(key: Uint8Array): Promise<OmsSecurity> {
    if (key.length !== KEY_LENGTH) {
      throw new RangeError(
        `Bad OMS key: ${key.length} bytes, must be ${KEY_LENGTH} (32 hex digits)`,
      );
    }
    return new OmsSecurity(
      await crypto.subtle.importKey("raw", buf(key), "AES-CBC", false, ["encrypt", "decrypt"]),
    );
  }

  /**
   * The plaintext of a mode 5 telegram: its encrypted blocks decrypted, followed by any
   * data after them that was sent in the clear.
   * @throws {DecryptError} when the header announces more blocks than the frame holds, or
   *   none, or the plaintext does not begin with `2F 2F` (wrong key, damaged frame)
   */
  async decrypt(header: OmsHeader): Promise<Uint8Array> {
    if (header.mode !== OMS_MODE_AES_CBC) {
      throw new DecryptError(`OMS security mode ${header.mode} is not AES-128-CBC (mode 5)`);
    }
    const length = header.encryptedBlocks * OMS_BLOCK_LENGTH;
    if (length === 0 || length > header.data.length) {
      throw new DecryptError(
        `OMS configuration field announces ${header.encryptedBlocks} encrypted block(s) ` +
          `(${length} bytes) but the frame carries ${header.data.length} data bytes: ` +
          `damaged frame`,
      );
    }
    const ciphertext = header.data.subarray(0, length);
    const last = ciphertext.subarray(length - OMS_BLOCK_LENGTH);
    const padding = new Uint8Array(OMS_BLOCK_LENGTH).fill(FULL_PADDING);
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt({ name: "AES-CBC", iv: buf(last.slice()) }, this.#key, padding),
    );
    const extended = concatBytes([ciphertext, sealed.subarray(0, OMS_BLOCK_LENGTH)]);
    const decrypted = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-CBC", iv: omsIv(header.address, header.access) },
        this.#key,
        extended,
      ),
    );
    if (decrypted[0] !== OMS_FILLER || decrypted[1] !== OMS_FILLER) {
      throw new DecryptError(
        `Decryption gave no OMS data (first bytes ${firstBytes(decrypted)}, not the check ` +
          `bytes 2F 2F): wrong key (dlms.key: for Netz OÖ the AMIS key from the ` +
          `eService portal) or damaged frame`,
      );
    }
    const clear = header.data.subarray(length);
    return clear.length === 0 ? decrypted : concatBytes([decrypted, clear]);
  }

  /**
   * Encrypts `plaintext` (whole 16-byte blocks, beginning with `2F 2F`) for the header's
   * address and access number: the simulator's half.
   * @throws {RangeError} when the plaintext is not whole blocks
   */
  async encrypt(address: Uint8Array, access: number, plaintext: Uint8Array): Promise<Uint8Array> {
    if (plaintext.length === 0 || plaintext.length % OMS_BLOCK_LENGTH !== 0) {
      throw new RangeError(
        `OMS plaintext of ${plaintext.length} bytes: must be whole ${OMS_BLOCK_LENGTH}-byte blocks`,
      );
    }
    const out = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-CBC", iv: omsIv(address, access) },
        this.#key,
        buf(plaintext),
      ),
    );
    return out.subarray(0, plaintext.length);
  }
}

function firstBytes(bytes: Uint8Array): string {
  if (bytes.length < CHECK_LENGTH) return "none: too short";
  return `${hex2(bytes[0]!).toUpperCase()} ${hex2(bytes[1]!).toUpperCase()}`;
}
