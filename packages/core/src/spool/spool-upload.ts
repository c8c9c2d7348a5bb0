import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { TooLargeError } from '../errors.ts'
import type { FileHash, FileHasher } from './file-hasher.ts'

// How much more must be on disk before the hashing thread is told: a message per 16 MiB. Each
// cost the request's thread about 1 ms in a profile on a loaded machine (4 MiB steps: 0.3 s a
// GiB); what is left to hash at the end is at most this much, ~10 ms on the thread.
const HASH_STEP = 16 * 1024 * 1024

// Bodies up to this size are hashed on the request's thread as they pass (well under a
// millisecond): cheaper than three messages to the hashing thread and its reading the file
// back, which cost a burst of small CMS uploads more than the hashing itself. Past it, the
// thread hashes the file from its start; what was hashed here is dropped.
const INLINE_HASH_BYTES = 1024 * 1024

// How much of the body's start is kept for the caller's sniff, so that it need not read the
// file back.
const HEAD_BYTES = 4096

export interface SpoolOptions {
  /** Bytes the body may have; one more is a `TooLargeError`. */
  maxBytes: number
  hasher: FileHasher
  signal?: AbortSignal | undefined
}

/** What was spooled: the body's length and sha256, and its first 4 KiB. */
export interface Spooled {
  size: number
  sha256: string
  head: Buffer
}

/**
 * Writes `body` to a new file at `path` (which must not exist), once, counting it against
 * the limit. A small body is hashed as it passes; a larger one by the hasher's thread from
 * the file as it grows, so the request's thread only moves its bytes. On failure the file is
 * left for the caller to remove.
 */
export async function spoolUpload(
  body: NodeJS.ReadableStream | AsyncIterable<Uint8Array>,
  path: string,
  { maxBytes, hasher, signal }: SpoolOptions,
): Promise<Spooled> {
  // Only the server's user may read an upload (0600), as in the storage it moves to.
  const file = createWriteStream(path, { flags: 'wx', mode: 0o600 })
  const inline = createHash('sha256')
  // Set once the body outgrows the inline hash.
  const handoff: { thread?: FileHash } = {}
  let head = Buffer.alloc(0)
  let size = 0
  let told = 0
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length
      if (size > maxBytes) return callback(new TooLargeError(maxBytes))
      if (head.length < HEAD_BYTES) {
        head = Buffer.concat([head, chunk.subarray(0, HEAD_BYTES - head.length)])
      }
      if (size <= INLINE_HASH_BYTES) inline.update(chunk)
      else handoff.thread ??= hasher.begin(path)
      // `bytesWritten` counts only writes the kernel has taken: that much can be read back.
      if (handoff.thread && file.bytesWritten - told >= HASH_STEP) {
        told = file.bytesWritten
        handoff.thread.written(told)
      }
      callback(null, chunk)
    },
  })
  try {
    await pipeline(body, meter, file, { signal })
  } catch (error) {
    handoff.thread?.cancel()
    throw error
  }
  const sha256 = handoff.thread ? await handoff.thread.end(size) : inline.digest('hex')
  return { size, sha256, head }
}
