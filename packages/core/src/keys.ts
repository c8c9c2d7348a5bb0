import { InvalidKeyError, InvalidRequestError } from './errors.ts'

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/**
 * Checks a storage key: `/`-separated segments of letters, digits, `.`, `_` and `-`, none of
 * them `.` or `..`, not absolute, no NUL or backslash. Every storage adapter calls this, so a
 * key can never name a path outside the storage root.
 */
export function assertValidKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 1024) {
    throw new InvalidKeyError('a storage key must be a non-empty string of at most 1024 characters')
  }
  for (const segment of key.split('/')) {
    if (!SEGMENT.test(segment) || segment === '..' || segment.includes('..')) {
      throw new InvalidKeyError(`invalid storage key ${JSON.stringify(key)}`)
    }
  }
}

/** Checks a key prefix: a valid key followed by `/`, or the empty string. */
export function assertValidPrefix(prefix: string): void {
  if (prefix === '') return
  if (!prefix.endsWith('/')) throw new InvalidKeyError(`a key prefix must end with "/"`)
  assertValidKey(prefix.slice(0, -1))
}

/**
 * Which keys a storage takes. `storage`: the server's own keys (`assertValidKey`). `bucket`:
 * the keys of someone else's bucket, as S3 takes them (`assertValidBucketKey`), for storages
 * that hold a client's objects under the names the client chose (the Elastic Transcoder API).
 */
export type KeyRule = 'storage' | 'bucket'

const MAX_BUCKET_KEY_BYTES = 1024
// Control characters (C0, DEL, C1): never part of a name a log, a path or a header shows.
const CONTROL = /\p{Cc}/u
// With the `u` flag only an unpaired surrogate matches: text that is not valid UTF-8.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u

/**
 * Checks a bucket key: any UTF-8 text S3 takes (spaces, parentheses, accents…), of at most 1024
 * bytes, but `/`-separated segments that are never empty, `.` or `..`, no control character and
 * no backslash: on a local folder the key still names a file under its root, and nothing else.
 */
export function assertValidBucketKey(key: string): void {
  if (
    typeof key !== 'string' ||
    key.length === 0 ||
    LONE_SURROGATE.test(key) ||
    Buffer.byteLength(key, 'utf8') > MAX_BUCKET_KEY_BYTES
  ) {
    throw new InvalidKeyError(
      `a bucket key must be UTF-8 text of 1 to ${MAX_BUCKET_KEY_BYTES} bytes`,
    )
  }
  if (CONTROL.test(key) || key.includes('\\')) {
    throw new InvalidKeyError(
      `bucket key ${JSON.stringify(key)} has a control character or a backslash`,
    )
  }
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new InvalidKeyError(
        `bucket key ${JSON.stringify(key)} has an empty, "." or ".." segment`,
      )
    }
  }
}

/** The key and prefix checks of a `KeyRule`. */
export function keyChecks(rule: KeyRule): {
  key(key: string): void
  prefix(prefix: string): void
} {
  const key = rule === 'bucket' ? assertValidBucketKey : assertValidKey
  return {
    key,
    prefix(prefix) {
      if (prefix === '') return
      if (!prefix.endsWith('/')) throw new InvalidKeyError(`a key prefix must end with "/"`)
      key(prefix.slice(0, -1))
    },
  }
}

function join(...parts: string[]): string {
  return parts.filter((part) => part !== '').join('/')
}

/** `<prefix>/<assetId>/` — everything stored for one asset lives under it. */
export function assetPrefix(prefix: string, assetId: string): string {
  return `${join(prefix.replace(/\/$/, ''), assetId)}/`
}

/** `<prefix>/<assetId>/original.<ext>` */
export function originalKey(prefix: string, assetId: string, extension: string): string {
  const key = `${assetPrefix(prefix, assetId)}original.${extension}`
  assertValidKey(key)
  return key
}

/** `<prefix>/<assetId>/<jobId>/` */
export function jobPrefix(prefix: string, assetId: string, jobId: string): string {
  return `${assetPrefix(prefix, assetId)}${jobId}/`
}

/** `<prefix>/<assetId>/<jobId>/<name>.<ext>`: two jobs never write the same key. */
export function outputKey(
  prefix: string,
  assetId: string,
  jobId: string,
  name: string,
  extension: string,
): string {
  const key = `${jobPrefix(prefix, assetId, jobId)}${name}.${extension}`
  assertValidKey(key)
  return key
}

/**
 * The file names of an HLS output's segments, as an ffmpeg pattern: `<stem>-%05d.ts` next to
 * the playlist `<stem>.m3u8`. One place, because whoever serves a playlist grants its readers
 * exactly the files of this pattern (`isHlsSegmentOf`).
 */
export function hlsSegmentPattern(playlistFile: string): string {
  return `${stemOf(playlistFile)}-%05d.ts`
}

/** `true` when `key` is one of the segments `hlsSegmentPattern` names for `playlistKey`. */
export function isHlsSegmentOf(playlistKey: string, key: string): boolean {
  const folder = playlistKey.slice(0, playlistKey.lastIndexOf('/') + 1)
  if (!key.startsWith(folder)) return false
  const stem = stemOf(playlistKey.slice(folder.length))
  const file = key.slice(folder.length)
  return file.startsWith(`${stem}-`) && /^\d{5,}\.ts$/.test(file.slice(stem.length + 1))
}

function stemOf(file: string): string {
  const dot = file.lastIndexOf('.')
  return dot > 0 ? file.slice(0, dot) : file
}

/** Opaque cursor of a newest-first listing: the position after (`createdAt`, `id`). */
export function encodeCursor(createdAt: Date, id: string): string {
  return Buffer.from(JSON.stringify([createdAt.toISOString(), id])).toString('base64url')
}

export function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (Array.isArray(value) && typeof value[0] === 'string' && typeof value[1] === 'string') {
      const createdAt = new Date(value[0])
      if (!Number.isNaN(createdAt.getTime())) return { createdAt, id: value[1] }
    }
  } catch {}
  throw new InvalidRequestError('INVALID_CURSOR', 'the cursor is malformed')
}

/** The page size asked for, clamped to 1–100. */
export function pageLimit(limit: number | undefined): number {
  return Math.min(100, Math.max(1, Math.trunc(limit ?? 20)))
}
