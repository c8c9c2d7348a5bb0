/** A comma-separated variable's values, trimmed, the empty ones left out. */
export function envList(raw: string | null): string[] {
  return (raw ?? '')
    .split(',')
    .map((value) => value.trim())
    .filter((value) => value !== '')
}
