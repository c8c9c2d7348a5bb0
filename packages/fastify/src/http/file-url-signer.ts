import assert from 'node:assert/strict'
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { FileUrlExpiredError, FileUrlInvalidError } from '../http-errors.ts'

/** The query parameters of a signed file URL, as the file route receives them. */
export interface FileUrlQuery {
  expires?: string
  download?: string
  signature?: string
}

export interface SignFileUrlOptions {
  /** How long the URL stays valid, in seconds (rounded up to the next whole minute). */
  expiresInSec: number
  /**
   * Serve the file as an attachment saved under this name. The name is covered by the
   * signature: whoever holds the link cannot change it. @default undefined (inline)
   */
  download?: string
  /** The current time, in milliseconds. @default Date.now() */
  now?: number
}

const SIGNATURE_BYTES = 32
const MIN_SECRET_BYTES = 32
const SIGNATURE_TEXT = /^[A-Za-z0-9_-]{43}$/

/**
 * Signs and checks the URLs of `GET {prefix}/files/*`, as S3 presigns its GET URLs: an
 * HMAC-SHA256 over the exact storage key, the expiry and the disposition (inline, or the
 * attachment name), so a URL signed for one file, time or name cannot be bent to another.
 *
 * @example
 * const signer = new FileUrlSigner(process.env.FILE_URL_SECRET)
 * const url = `/files/${key}?${signer.sign(key, { expiresInSec: 3600 })}`
 * signer.verify(key, { expires, download, signature }) // throws a 403 error when it does not hold
 */
export class FileUrlSigner {
  #secret: Buffer

  /** @param secret At least 32 bytes. @default 32 random bytes (valid in this process only) */
  constructor(secret?: string | Uint8Array) {
    this.#secret = secret === undefined ? randomBytes(MIN_SECRET_BYTES) : Buffer.from(secret)
    assert.ok(
      this.#secret.length >= MIN_SECRET_BYTES,
      `transcodekit: \`fileUrlSecret\` must be at least ${MIN_SECRET_BYTES} bytes`,
    )
  }

  /** The query string (without `?`) that makes `key`'s URL valid until the expiry. */
  sign(key: string, options: SignFileUrlOptions): string {
    const now = options.now ?? Date.now()
    const expires = Math.ceil((now / 1000 + options.expiresInSec) / 60) * 60
    return this.signUntil(key, expires, options.download)
  }

  /**
   * The query string that makes `key`'s URL valid until `expires` (seconds since the epoch,
   * as `verify` returns it): how a served playlist hands its segments the playlist's expiry.
   */
  signUntil(key: string, expires: number, download?: string): string {
    const query = new URLSearchParams({ expires: String(expires) })
    if (download !== undefined) query.set('download', download)
    query.set('signature', this.#mac(key, expires, download ?? null).toString('base64url'))
    return query.toString()
  }

  /**
   * Checks a request's signature for `key`; returns the expiry (seconds since the epoch) and
   * the attachment name, if any. Throws `FileUrlInvalidError` for a missing or altered
   * signature, `FileUrlExpiredError` for a genuine one past its time.
   */
  verify(
    key: string,
    query: FileUrlQuery,
    now = Date.now(),
  ): { expires: number; download: string | null } {
    const { expires: expiresText, signature } = query
    if (signature === undefined || expiresText === undefined) {
      throw FileUrlInvalidError('this file URL is not signed: ask the API for a fresh URL')
    }
    const expires = /^\d{1,15}$/.test(expiresText) ? Number(expiresText) : Number.NaN
    // Exactly the 43 characters `sign` writes: no padding or stray characters a lenient decoder
    // would skip.
    const given = SIGNATURE_TEXT.test(signature) ? Buffer.from(signature, 'base64url') : null
    const download = query.download ?? null
    if (
      Number.isNaN(expires) ||
      given?.length !== SIGNATURE_BYTES ||
      !timingSafeEqual(given, this.#mac(key, expires, download))
    ) {
      throw FileUrlInvalidError('the signature of this file URL does not match it')
    }
    if (expires * 1000 <= now) {
      throw FileUrlExpiredError('this file URL has expired: ask the API for a fresh URL')
    }
    return { expires, download }
  }

  #mac(key: string, expires: number, download: string | null): Buffer {
    // JSON keeps the fields apart: no key, time or name can be shifted into another field.
    return createHmac('sha256', this.#secret)
      .update(JSON.stringify(['transcodekit-file-v1', key, expires, download]))
      .digest()
  }
}
