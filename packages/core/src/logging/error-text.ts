/** What a log line or a recorded failure shows of a thrown value: an error's message, else the value as text. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
