import { validationError } from './et-errors.ts'

/** The `PageToken` of a listing: the last id of the page before, opaque to clients. */
export function encodePageToken(lastId: string | null): string | undefined {
  return lastId === null ? undefined : Buffer.from(lastId, 'utf8').toString('base64url')
}

export function decodePageToken(token: string | undefined): string | null {
  if (token === undefined || token === '') return null
  const id = /^[A-Za-z0-9_-]{1,200}$/.test(token)
    ? Buffer.from(token, 'base64url').toString('utf8')
    : ''
  if (!/^\d{13}-[a-z0-9]{6}$/.test(id)) {
    throw validationError(
      `1 validation error detected: Value '${token}' at 'pageToken' is not a valid page token.`,
    )
  }
  return id
}

/** `Ascending`: the string `true` or `false`, as ET takes it. */
export function parseAscending(value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback
  if (value === 'true' || value === 'false') return value === 'true'
  throw validationError(
    "1 validation error detected: Value at 'ascending' failed to satisfy constraint: Member must satisfy regular expression pattern: (^true$)|(^false$)",
  )
}
