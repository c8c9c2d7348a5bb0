import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'

/**
 * Fields Strapi's upload plugin writes only when it stores new bytes for an entry (its
 * `replace`): an edit of the name, caption or alternative text writes none of them. Strapi
 * keeps the entry's `hash` (its file name) on a replacement, so it cannot tell them apart.
 */
const FILE_FIELDS = ['size', 'sizeInBytes', 'mime', 'ext', 'formats'] as const

/** Whether an update of a media entry (`event.params.data`) stores a new file. */
export function replacesFile(data: unknown): boolean {
  if (!data || typeof data !== 'object') return false
  return FILE_FIELDS.some((field) => field in data)
}

/** SHA-256 (hex) of a file's bytes, read to the end; aborts with `signal`. */
export async function sha256Of(
  body: Readable | AsyncIterable<Uint8Array>,
  signal?: AbortSignal,
): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of body) {
    signal?.throwIfAborted()
    hash.update(chunk)
  }
  return hash.digest('hex')
}
