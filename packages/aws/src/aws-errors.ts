import { EngineError } from '@transcodekit/core'

/** The name, HTTP status and message of an AWS SDK error (or of anything thrown). */
export function serviceError(error: unknown): { name: string; status?: number; message: string } {
  const e = error as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } }
  return {
    name: e?.name ?? 'Error',
    status: e?.$metadata?.httpStatusCode,
    message: e?.message ?? String(error),
  }
}

/**
 * A failed job submission as an `EngineError`: a 4xx answer is a refusal that sending the
 * same job again would not change (`ENGINE_REJECTED`); throttling (429), a 5xx or no answer
 * at all is `ENGINE_UNAVAILABLE`, worth another delivery.
 */
export function submissionError(service: string, error: unknown): EngineError {
  const { name, status, message } = serviceError(error)
  if (status !== undefined && status >= 400 && status < 500 && status !== 429) {
    return new EngineError('ENGINE_REJECTED', `${service} refused the job: ${name}: ${message}`, {
      cause: error,
    })
  }
  return new EngineError('ENGINE_UNAVAILABLE', `${service}: ${name}: ${message}`, { cause: error })
}

/** A notification message as SNS delivers it (JSON text) or already parsed; `null` if not JSON. */
export function notificationBody(message: unknown): unknown {
  if (typeof message !== 'string') return message
  try {
    return JSON.parse(message)
  } catch {
    return null
  }
}
