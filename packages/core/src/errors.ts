/**
 * The codes of the errors core throws to its callers (`TranscodeKitError.code`), each with
 * its own meaning: safe to branch on, and stable across versions. Adapters map them (the
 * Fastify plugin to HTTP statuses, the Strapi plugin to its answers), typed by this list so
 * that a new code cannot go unmapped.
 */
export const REQUEST_ERROR_CODES = [
  'NOT_FOUND',
  'UNKNOWN_PRESET',
  'INVALID_PRESET',
  'INCOMPATIBLE_PRESET',
  'UNSUPPORTED_MEDIA',
  'TOO_LARGE',
  'INVALID_STATE',
  'IDEMPOTENCY_CONFLICT',
  'INVALID_KEY',
  'CONFIGURATION',
  'ABORTED',
  'INVALID_REQUEST',
  'INVALID_CURSOR',
  'INVALID_ID',
  'INVALID_IDEMPOTENCY_KEY',
  'INVALID_RANGE',
  'INVALID_MESSAGE',
  'NOTIFICATION_REJECTED',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'TOO_MANY_JOBS',
  'INSUFFICIENT_STORAGE',
  'MEDIA_TOO_LONG',
  'FRAME_TOO_LARGE',
  'FRAME_RATE_TOO_HIGH',
  'OUTPUT_TOO_LARGE',
  'WEBHOOK_URL_REFUSED',
] as const
export type RequestErrorCode = (typeof REQUEST_ERROR_CODES)[number]

/** The limits of `JobLimits` that refuse an input, by the code of their `MediaLimitError`. */
export type MediaLimitCode = Extract<
  RequestErrorCode,
  'MEDIA_TOO_LONG' | 'FRAME_TOO_LARGE' | 'FRAME_RATE_TOO_HIGH' | 'OUTPUT_TOO_LARGE'
>

/**
 * Why a job or one of its outputs failed (`Job.errorCode`, `Output.errorCode`): set by the
 * engines (`EngineError`) and the ffmpeg engine's guards, or by a limit that refused the job
 * before it started (a `MediaLimitCode`).
 */
export const JOB_ERROR_CODES = [
  'DECODE_FAILED',
  'ENCODE_FAILED',
  'TIMEOUT',
  'ENGINE_UNAVAILABLE',
  'ENGINE_REJECTED',
  'ENGINE_FAILED',
  'STORAGE_FAILED',
  'STALLED',
  'CPU_LIMIT',
  'MEMORY_LIMIT',
  'OUTPUT_TOO_LARGE',
  'NO_FRAME',
] as const
export type JobErrorCode = (typeof JOB_ERROR_CODES)[number]

/** Every code core gives an error. Adapters may add their own (`USAGE` in the CLI). */
export type ErrorCode = RequestErrorCode | JobErrorCode

/**
 * Base class of every error transcodekit throws on purpose. `code` is stable and safe to
 * branch on (core's are the `ErrorCode`s); the message is for people. No HTTP knowledge here:
 * the Fastify package maps codes to status codes in one place.
 */
export class TranscodeKitError extends Error {
  readonly code: ErrorCode | (string & {})

  constructor(code: ErrorCode | (string & {}), message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** An asset, job or stored object that does not exist. */
export class NotFoundError extends TranscodeKitError {
  readonly resource: string

  constructor(resource: string, id: string, options?: { cause?: unknown }) {
    super('NOT_FOUND', `${resource} ${JSON.stringify(id)} was not found`, options)
    this.resource = resource
  }
}

/** A preset id or alias that the catalog does not know. */
export class UnknownPresetError extends TranscodeKitError {
  readonly presetId: string

  constructor(presetId: string) {
    super('UNKNOWN_PRESET', `unknown preset ${JSON.stringify(presetId)}`)
    this.presetId = presetId
  }
}

/** A custom preset that does not satisfy the preset schema. */
export class InvalidPresetError extends TranscodeKitError {
  constructor(message: string) {
    super('INVALID_PRESET', message)
  }
}

/** A preset that cannot apply to this input (a video preset for an audio-only file). */
export class IncompatiblePresetError extends TranscodeKitError {
  constructor(message: string) {
    super('INCOMPATIBLE_PRESET', message)
  }
}

/** Input whose bytes are not audio or video, whatever its name or claimed type. */
export class UnsupportedMediaError extends TranscodeKitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNSUPPORTED_MEDIA', message, options)
  }
}

/** Input larger than the configured limit. */
export class TooLargeError extends TranscodeKitError {
  readonly limit: number

  constructor(limit: number) {
    super('TOO_LARGE', `input exceeds the limit of ${limit} bytes`)
    this.limit = limit
  }
}

/** An operation that the current state of a job does not allow (cancel a finished job). */
export class InvalidStateError extends TranscodeKitError {
  constructor(message: string) {
    super('INVALID_STATE', message)
  }
}

/** An idempotency key reused for a different request. */
export class IdempotencyConflictError extends TranscodeKitError {
  constructor(key: string) {
    super(
      'IDEMPOTENCY_CONFLICT',
      `idempotency key ${JSON.stringify(key)} was already used for a different request`,
    )
  }
}

/** A storage key that is malformed or would resolve outside the storage root. */
export class InvalidKeyError extends TranscodeKitError {
  constructor(message: string) {
    super('INVALID_KEY', message)
  }
}

/** Bad options given to a factory; thrown at start-up. */
export class ConfigurationError extends TranscodeKitError {
  constructor(message: string) {
    super('CONFIGURATION', message)
  }
}

/**
 * Why an engine failed a job. Stored on the job as `errorCode`/`errorMessage`.
 * Codes: `DECODE_FAILED` (input could not be decoded), `ENCODE_FAILED`, `TIMEOUT`,
 * `ENGINE_UNAVAILABLE`, `ENGINE_REJECTED`, `STORAGE_FAILED`; the ffmpeg engine's guards:
 * `STALLED`, `CPU_LIMIT`, `MEMORY_LIMIT`, `OUTPUT_TOO_LARGE`. An output that fails alone while
 * its job completes carries its own code (`NO_FRAME`).
 */
export class EngineError extends TranscodeKitError {
  declare readonly code: JobErrorCode

  constructor(code: JobErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
  }
}

/** The operation was aborted through its `AbortSignal`. */
export class AbortedError extends TranscodeKitError {
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super('ABORTED', message, options)
  }
}

/** A request whose parameters are malformed (a bad cursor, an empty preset list). */
export class InvalidRequestError extends TranscodeKitError {
  declare readonly code: RequestErrorCode

  constructor(
    code: Extract<
      RequestErrorCode,
      | 'INVALID_REQUEST'
      | 'INVALID_CURSOR'
      | 'INVALID_ID'
      | 'INVALID_IDEMPOTENCY_KEY'
      | 'INVALID_RANGE'
      | 'INVALID_MESSAGE'
    >,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options)
  }
}

/**
 * A push notification that failed verification (signature, certificate host, topic, age,
 * replay). `reason` is a stable sub-code: `UNSIGNED`, `BAD_SIGNATURE`, `UNTRUSTED_CERT_URL`,
 * `UNKNOWN_TOPIC`, `TOO_OLD`, `REPLAYED`, `MALFORMED`.
 */
export class NotificationRejectedError extends TranscodeKitError {
  readonly reason: string

  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super('NOTIFICATION_REJECTED', message, options)
    this.reason = reason
  }
}

/** A request that could not be tied to an owner (no credentials, or ones the app refused). */
export class UnauthenticatedError extends TranscodeKitError {
  constructor(message = 'this request needs credentials', options?: { cause?: unknown }) {
    super('UNAUTHENTICATED', message, options)
  }
}

/** An owner that may not do this action on this resource of its own. */
export class ForbiddenError extends TranscodeKitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('FORBIDDEN', message, options)
  }
}

/** An owner that already has as many jobs waiting or running as it may. */
export class TooManyJobsError extends TranscodeKitError {
  readonly limit: number

  constructor(limit: number) {
    super(
      'TOO_MANY_JOBS',
      `at most ${limit} jobs may wait or run at once: try again when one has ended`,
    )
    this.limit = limit
  }
}

/**
 * The disk (or quota) ran out of space while writing an upload or an object (`ENOSPC`,
 * `EDQUOT`). What was partly written is removed; the write can succeed once space is back.
 */
export class InsufficientStorageError extends TranscodeKitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INSUFFICIENT_STORAGE', message, options)
  }
}

/** `error` as an `InsufficientStorageError` when it is a file system's "no space left". */
export function outOfSpace(error: unknown, what: string): InsufficientStorageError | null {
  if (error instanceof InsufficientStorageError) return error
  const code = (error as NodeJS.ErrnoException | null)?.code
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return null
  return new InsufficientStorageError(`no space left to store ${what}`, { cause: error })
}

/**
 * An input whose probed facts exceed one of the configured job limits; refused before a job
 * is created (or, for a job created under other limits, before it starts). Subclasses name
 * the limit: `MEDIA_TOO_LONG`, `FRAME_TOO_LARGE`, `FRAME_RATE_TOO_HIGH`, `OUTPUT_TOO_LARGE`.
 */
export class MediaLimitError extends TranscodeKitError {
  /** The option of `limits` that refused the input (`maxDurationSec`, …). */
  declare readonly code: MediaLimitCode
  readonly limit: string
  /** The configured maximum. */
  readonly max: number
  /** What the input has (or, for the output size, what the job was estimated to write). */
  readonly actual: number

  constructor(
    code: MediaLimitCode,
    limit: string,
    actual: number,
    max: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options)
    this.limit = limit
    this.max = max
    this.actual = actual
  }
}

/** An input longer than `limits.maxDurationSec`. */
export class MediaTooLongError extends MediaLimitError {
  constructor(actual: number, max: number) {
    super(
      'MEDIA_TOO_LONG',
      'maxDurationSec',
      actual,
      max,
      `the input lasts ${Math.round(actual)} s, more than the limit of ${max} s`,
    )
  }
}

/** A video whose frames have more pixels than `limits.maxFramePixels`. */
export class FrameTooLargeError extends MediaLimitError {
  constructor(width: number, height: number, max: number) {
    super(
      'FRAME_TOO_LARGE',
      'maxFramePixels',
      width * height,
      max,
      `the video's frames are ${width}×${height} (${width * height} pixels), more than the limit of ${max} pixels`,
    )
  }
}

/** A video whose frame rate exceeds `limits.maxFrameRate`. */
export class FrameRateTooHighError extends MediaLimitError {
  constructor(actual: number, max: number) {
    super(
      'FRAME_RATE_TOO_HIGH',
      'maxFrameRate',
      actual,
      max,
      `the video runs at ${Math.round(actual * 100) / 100} frames per second, more than the limit of ${max}`,
    )
  }
}

/** A job whose outputs are estimated to be larger than `limits.maxOutputBytes`. */
export class OutputTooLargeError extends MediaLimitError {
  constructor(actual: number, max: number) {
    super(
      'OUTPUT_TOO_LARGE',
      'maxOutputBytes',
      actual,
      max,
      `the outputs would take about ${actual} bytes, more than the limit of ${max} bytes`,
    )
  }
}

/**
 * A webhook URL that may not be called: not http(s), with credentials in it, or naming (or
 * resolving to) a private, loopback, link-local or otherwise non-public address while the app
 * does not allow those (`allowPrivateAddresses`).
 */
export class WebhookUrlError extends TranscodeKitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WEBHOOK_URL_REFUSED', message, options)
  }
}
