import { STATUS_CODES } from 'node:http'
import createError, { type FastifyErrorConstructor } from '@fastify/error'
import { type RequestErrorCode, TranscodeKitError } from '@transcodekit/core'

/*
 * Every error the routes answer with, made once with `@fastify/error` and exported so an app
 * can test `instanceof`. The message is a format string: `%s` takes the core error's message.
 */
export const NotFoundError = createError('TRANSCODEKIT_NOT_FOUND', '%s', 404)
export const UnknownPresetError = createError('TRANSCODEKIT_UNKNOWN_PRESET', '%s', 400)
export const InvalidPresetError = createError('TRANSCODEKIT_INVALID_PRESET', '%s', 400)
export const IncompatiblePresetError = createError('TRANSCODEKIT_INCOMPATIBLE_PRESET', '%s', 400)
export const InvalidRequestError = createError('TRANSCODEKIT_INVALID_REQUEST', '%s', 400)
export const InvalidCursorError = createError('TRANSCODEKIT_INVALID_CURSOR', '%s', 400)
export const InvalidIdempotencyKeyError = createError(
  'TRANSCODEKIT_INVALID_IDEMPOTENCY_KEY',
  '%s',
  400,
)
export const UnsupportedMediaError = createError('TRANSCODEKIT_UNSUPPORTED_MEDIA', '%s', 415)
export const TooLargeError = createError('TRANSCODEKIT_TOO_LARGE', '%s', 413)
export const TooManyPartsError = createError('TRANSCODEKIT_TOO_MANY_PARTS', '%s', 413)
export const FieldTooLargeError = createError('TRANSCODEKIT_FIELD_TOO_LARGE', '%s', 413)
export const MalformedMultipartError = createError('TRANSCODEKIT_MALFORMED_MULTIPART', '%s', 400)
export const UnsupportedContentTypeError = createError(
  'TRANSCODEKIT_UNSUPPORTED_CONTENT_TYPE',
  '%s',
  415,
)
export const NotMultipartError = createError('TRANSCODEKIT_NOT_MULTIPART', '%s', 415)
export const MissingFileError = createError('TRANSCODEKIT_MISSING_FILE', '%s', 400)
export const InvalidStateError = createError('TRANSCODEKIT_INVALID_STATE', '%s', 409)
export const IdempotencyConflictError = createError('TRANSCODEKIT_IDEMPOTENCY_CONFLICT', '%s', 422)
export const NotificationRejectedError = createError(
  'TRANSCODEKIT_NOTIFICATION_REJECTED',
  '%s',
  403,
)
export const FileUrlInvalidError = createError('TRANSCODEKIT_FILE_URL_INVALID', '%s', 403)
export const FileUrlExpiredError = createError('TRANSCODEKIT_FILE_URL_EXPIRED', '%s', 403)
export const RangeNotSatisfiableError = createError('TRANSCODEKIT_RANGE_NOT_SATISFIABLE', '%s', 416)
// Media that decodes but costs more than the server's job limits allow: well-formed, refused.
export const MediaTooLongError = createError('TRANSCODEKIT_MEDIA_TOO_LONG', '%s', 422)
export const FrameTooLargeError = createError('TRANSCODEKIT_FRAME_TOO_LARGE', '%s', 422)
export const FrameRateTooHighError = createError('TRANSCODEKIT_FRAME_RATE_TOO_HIGH', '%s', 422)
export const OutputTooLargeError = createError('TRANSCODEKIT_OUTPUT_TOO_LARGE', '%s', 422)
export const AbortedError = createError('TRANSCODEKIT_ABORTED', '%s', 400)
export const UnauthenticatedError = createError('TRANSCODEKIT_UNAUTHENTICATED', '%s', 401)
export const ForbiddenError = createError('TRANSCODEKIT_FORBIDDEN', '%s', 403)
export const TooManyJobsError = createError('TRANSCODEKIT_TOO_MANY_JOBS', '%s', 429)
/** For an app's rate limiter (`@fastify/rate-limit`'s `errorResponseBuilder`), so it answers like the routes. */
export const RateLimitedError = createError('TRANSCODEKIT_RATE_LIMITED', '%s', 429)
/** For an app that guards a keyless API from browsers (DNS rebinding, cross-site forms). */
export const HostNotAllowedError = createError('TRANSCODEKIT_HOST_NOT_ALLOWED', '%s', 403)
export const CrossSiteRequestError = createError('TRANSCODEKIT_CROSS_SITE_REQUEST', '%s', 403)
export const UploadTimeoutError = createError('TRANSCODEKIT_UPLOAD_TIMEOUT', '%s', 408)
export const InsufficientStorageError = createError('TRANSCODEKIT_INSUFFICIENT_STORAGE', '%s', 507)
export const InternalError = createError('TRANSCODEKIT_INTERNAL', '%s', 500)

/**
 * Core's request error codes (`TranscodeKitError.code`) and the HTTP error each one becomes:
 * every one of them, so that a code core adds cannot go unmapped.
 */
const FROM_CORE: Record<RequestErrorCode, FastifyErrorConstructor> = {
  NOT_FOUND: NotFoundError,
  UNKNOWN_PRESET: UnknownPresetError,
  INVALID_PRESET: InvalidPresetError,
  INCOMPATIBLE_PRESET: IncompatiblePresetError,
  INVALID_REQUEST: InvalidRequestError,
  INVALID_CURSOR: InvalidCursorError,
  INVALID_IDEMPOTENCY_KEY: InvalidIdempotencyKeyError,
  INVALID_ID: InvalidRequestError,
  INVALID_RANGE: RangeNotSatisfiableError,
  INVALID_MESSAGE: InvalidRequestError,
  // A webhook URL refused by the SSRF guard, should an app pass one from a request.
  WEBHOOK_URL_REFUSED: InvalidRequestError,
  // The server's own options are wrong: nothing the client can change.
  CONFIGURATION: InternalError,
  // A key the client made up (a file URL): to the client it names nothing.
  INVALID_KEY: NotFoundError,
  UNSUPPORTED_MEDIA: UnsupportedMediaError,
  TOO_LARGE: TooLargeError,
  INVALID_STATE: InvalidStateError,
  IDEMPOTENCY_CONFLICT: IdempotencyConflictError,
  NOTIFICATION_REJECTED: NotificationRejectedError,
  ABORTED: AbortedError,
  UNAUTHENTICATED: UnauthenticatedError,
  FORBIDDEN: ForbiddenError,
  TOO_MANY_JOBS: TooManyJobsError,
  INSUFFICIENT_STORAGE: InsufficientStorageError,
  MEDIA_TOO_LONG: MediaTooLongError,
  FRAME_TOO_LARGE: FrameTooLargeError,
  FRAME_RATE_TOO_HIGH: FrameRateTooHighError,
  OUTPUT_TOO_LARGE: OutputTooLargeError,
}

/** Errors of `@fastify/multipart` and of its parser (busboy), by their code. */
const FROM_MULTIPART: Record<string, [FastifyErrorConstructor, string]> = {
  FST_REQ_FILE_TOO_LARGE: [TooLargeError, 'the file is larger than the upload limit'],
  FST_PARTS_LIMIT: [TooManyPartsError, 'the form has more parts than allowed'],
  FST_FILES_LIMIT: [TooManyPartsError, 'the form has more files than allowed (one)'],
  FST_FIELDS_LIMIT: [TooManyPartsError, 'the form has more fields than allowed'],
  FST_PROTO_VIOLATION: [MalformedMultipartError, 'a form field name is not allowed'],
  FST_INVALID_MULTIPART_CONTENT_TYPE: [NotMultipartError, 'the request is not multipart/form-data'],
  FST_MP_PREMATURE_CLOSE: [MalformedMultipartError, 'the request ended before the form did'],
  FST_INVALID_JSON_FIELD_ERROR: [MalformedMultipartError, 'a JSON form field is not valid JSON'],
}

/** Messages busboy throws as plain errors for a body that is not well-formed multipart. */
const BUSBOY_MESSAGES = [
  'Unexpected end of form',
  'Unexpected end of multipart data',
  'Malformed part header',
  'Multipart: Boundary not found',
  'Part terminated early',
  'Malformed urlencoded form',
]

export interface HttpError {
  statusCode: number
  code: string
  error: string
  message: string
}

/**
 * The one place where an error becomes an HTTP answer: core errors by their `code`,
 * multipart and validation errors by theirs. Anything else is a 500 whose message is not
 * shown (it is logged by the caller).
 */
export function toHttpError(error: unknown): HttpError {
  const made = mapError(error)
  const statusCode = made.statusCode ?? 500
  return {
    statusCode,
    code: made.code,
    error: STATUS_CODES[statusCode] ?? 'Error',
    message: made.message,
  }
}

function mapError(error: unknown): { code: string; statusCode?: number; message: string } {
  if (error instanceof TranscodeKitError) {
    const make = Object.hasOwn(FROM_CORE, error.code)
      ? FROM_CORE[error.code as RequestErrorCode]
      : undefined
    if (make) return make(make === InternalError ? 'internal error' : error.message)
    if (error.name === 'InvalidRequestError') return InvalidRequestError(error.message)
    return InternalError('internal error')
  }
  if (!(error instanceof Error)) return InternalError('internal error')
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string' && code.startsWith('TRANSCODEKIT_')) {
    return error as Error & { code: string; statusCode?: number }
  }
  const validation = (error as { validation?: unknown }).validation
  if (validation) return InvalidRequestError(error.message)
  if (typeof code === 'string' && FROM_MULTIPART[code]) {
    const [make, message] = FROM_MULTIPART[code]
    return make(message)
  }
  if (BUSBOY_MESSAGES.some((text) => error.message.startsWith(text))) {
    return MalformedMultipartError(`malformed multipart body: ${error.message}`)
  }
  const statusCode = (error as { statusCode?: unknown }).statusCode
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    // Fastify's own client errors (body too large, unknown content type, bad JSON).
    if (statusCode === 413) return TooLargeError(error.message)
    if (statusCode === 415) return UnsupportedContentTypeError(error.message)
    return { code: 'TRANSCODEKIT_INVALID_REQUEST', statusCode, message: error.message }
  }
  return InternalError('internal error')
}
