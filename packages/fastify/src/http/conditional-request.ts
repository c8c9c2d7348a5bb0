import type { IncomingHttpHeaders } from 'node:http'
import fresh from 'fresh'

/** The validators of the representation a request asks for. */
export interface Validators {
  /** A strong entity tag, quoted (`"…"`), or `null`. */
  etag: string | null
  lastModified: Date | null
}

/**
 * `true` when a GET or HEAD can be answered 304 (RFC 9110 §13.1.2, §13.1.4): `If-None-Match`
 * with weak comparison over a list or `*`, else `If-Modified-Since`. jshttp's `fresh` does the
 * parsing (and, like Express, treats a request's `Cache-Control: no-cache` as a reload).
 */
export function isNotModified(headers: IncomingHttpHeaders, validators: Validators): boolean {
  return fresh(headers, {
    etag: validators.etag ?? undefined,
    'last-modified': validators.lastModified?.toUTCString(),
  })
}

/**
 * `true` when a `Range` may be honoured under the request's `If-Range` (RFC 9110 §13.1.5):
 * no `If-Range`, an entity tag equal by strong comparison, or a date exactly equal to a
 * Last-Modified that is a strong validator (at least a second old). Otherwise the whole
 * representation is sent.
 */
export function ifRangeHolds(
  header: string | string[] | undefined,
  validators: Validators,
  now = Date.now(),
): boolean {
  if (header === undefined) return true
  if (typeof header !== 'string') return false
  const value = header.trim()
  // An entity tag has a DQUOTE within its first three characters (`"…"` or `W/"…"`).
  if (value.slice(0, 3).includes('"')) {
    return validators.etag !== null && !value.startsWith('W/') && value === validators.etag
  }
  const { lastModified } = validators
  if (!lastModified) return false
  const date = Date.parse(value)
  const seconds = Math.floor(lastModified.getTime() / 1000) * 1000
  return date === seconds && lastModified.getTime() <= now - 1000
}
