/** The idempotency key prefix of the core job that runs an ET job: one ET job, one core job. */
export const CORE_KEY_PREFIX = 'elastic-transcoder:'

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
