import type { RequestErrorCode } from '@transcodekit/core'

/** The codes of an `OriginalReadError`. */
export type OriginalReadCode = 'ORIGINAL_REJECTED' | 'ORIGINAL_NOT_FOUND'

/**
 * For every code a file's transcoding can be refused with: whether trying again later can
 * succeed. Typed by core's list, so that a code core adds must be decided here.
 */
const RETRYABLE: Record<RequestErrorCode | OriginalReadCode, boolean> = {
  // The server is busy, short of space, or was stopped: later may work.
  ABORTED: true,
  TOO_MANY_JOBS: true,
  INSUFFICIENT_STORAGE: true,
  // The file, its presets or the server's options: the same again gives the same answer.
  NOT_FOUND: false,
  UNKNOWN_PRESET: false,
  INVALID_PRESET: false,
  INCOMPATIBLE_PRESET: false,
  UNSUPPORTED_MEDIA: false,
  TOO_LARGE: false,
  MEDIA_TOO_LONG: false,
  FRAME_TOO_LARGE: false,
  FRAME_RATE_TOO_HIGH: false,
  OUTPUT_TOO_LARGE: false,
  INVALID_STATE: false,
  IDEMPOTENCY_CONFLICT: false,
  INVALID_KEY: false,
  CONFIGURATION: false,
  INVALID_REQUEST: false,
  INVALID_CURSOR: false,
  INVALID_ID: false,
  INVALID_IDEMPOTENCY_KEY: false,
  INVALID_RANGE: false,
  INVALID_MESSAGE: false,
  NOTIFICATION_REJECTED: false,
  UNAUTHENTICATED: false,
  FORBIDDEN: false,
  WEBHOOK_URL_REFUSED: false,
  ORIGINAL_REJECTED: false,
  ORIGINAL_NOT_FOUND: false,
}

/**
 * Whether retrying cannot fix `error`: a refusal with one of the codes above that says so.
 * Anything else (a database or network failure, an engine error) is worth another try.
 */
export function isPermanentError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && Object.hasOwn(RETRYABLE, code)
    ? !RETRYABLE[code as keyof typeof RETRYABLE]
    : false
}
