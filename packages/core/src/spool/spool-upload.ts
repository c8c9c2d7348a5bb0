import { createWriteStream } from 'node:fs'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { TooLargeError } from '../errors.ts'
import type { FileHasher } from './file-hasher.ts'

// How much more must be on disk before the hashing thread is told: a message per 16 MiB. Each
// cost the request's thread about 1 ms in a profile on a loaded machine (4 MiB steps: 0.3 s a
// GiB); what is left to hash at the end is at most this much, ~10 ms on the thread.
const HASH_STEP = 16 * 1024 * 1024

export interface SpoolOptions {
  /** Bytes the body may have; one more is a `TooLargeError`. */
  maxBytes: number
  hasher: FileHasher
  signal?: AbortSignal | undefined
}

/** What was spooled: the body's length and sha256. */
export interface Spooled {
  size: number
  sha256: string
}

/**
 * Writes `body` to a new file at `path` (which must not exist), once, counting it against
 * the limit. Its sha256 is computed by the hasher's thread from the file as it grows, so the
 * request's thread only moves bytes. On failure the file is left for the caller to remove.
 */
export async function spoolUpload(
  body: NodeJS.ReadableStream | AsyncIterable<Uint8Array>,
  path: string,
  { maxBytes, hasher, signal }: SpoolOptions,
): Promise<Spooled> {
  // Only the server's user may read an upload (0600), as in the storage it moves to.
  const file = createWriteStream(path, { flags: 'wx', mode: 0o600 })
  const hash = hasher.begin(path)
  let size = 0
  let told = 0
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length
      if (size > maxBytes) return callback(new TooLargeError(maxBytes))
      // `bytesWritten` counts only writes the kernel has taken: that much can be read back.
      if (file.bytesWritten - told >= HASH_STEP) {
        told = file.bytesWritten
        hash.written(told)
      }
      callback(null, chunk)
    },
  })
  try {
    await pipeline(body, meter, file, { signal })
  } catch (error) {
    hash.cancel()
    throw error
  }
  return { size, sha256: await hash.end(size) }
}
