import { TranscodeKitError } from '@transcodekit/core'

/**
 * The error types of Elastic Transcoder's API (2012-09-25) and the HTTP status each is
 * answered with, as the AWS SDKs model them; the last three are the ones AWS's front door
 * answers for authentication.
 */
export const ET_ERROR_STATUS = {
  ValidationException: 400,
  IncompatibleVersionException: 400,
  AccessDeniedException: 403,
  ResourceNotFoundException: 404,
  ResourceInUseException: 409,
  LimitExceededException: 429,
  InternalServiceException: 500,
  MissingAuthenticationTokenException: 403,
  IncompleteSignatureException: 400,
  InvalidSignatureException: 403,
  UnrecognizedClientException: 403,
  UnknownOperationException: 404,
} as const

export type EtErrorType = keyof typeof ET_ERROR_STATUS

/**
 * An error the API answers the Elastic Transcoder way: `code` is the ET error type, answered
 * in the `x-amzn-ErrorType` header and the body's `__type`, with `{ message }`.
 */
export class ElasticTranscoderError extends TranscodeKitError {
  readonly statusCode: number

  constructor(code: EtErrorType, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
    this.statusCode = ET_ERROR_STATUS[code]
  }
}

export function validationError(message: string): ElasticTranscoderError {
  return new ElasticTranscoderError('ValidationException', message)
}

export function notFound(what: 'pipeline' | 'job' | 'preset', id: string): ElasticTranscoderError {
  return new ElasticTranscoderError(
    'ResourceNotFoundException',
    `The specified ${what} was not found: ${what}Id=${id}.`,
  )
}
