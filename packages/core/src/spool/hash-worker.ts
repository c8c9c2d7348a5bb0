// The thread of `FileHasher` (file-hasher.ts): hashes files while another thread writes them,
// reading each from the page cache up to the length the writer says is on disk.
//
// `hashThread` is started from its source text (`new Worker(..., { eval: true })`), not from
// this file: a thread that loads a `.ts` file loads Node's TypeScript stripper too (about
// 17 MiB more memory). So it refers to nothing outside itself and takes Node's modules with
// `require`, as code evaluated in a worker does.
import type { Hash } from 'node:crypto'
import type { HashReply, HashRequest } from './hash-protocol.ts'

export function hashThread(): void {
  const { createHash } = require('node:crypto') as typeof import('node:crypto')
  const { closeSync, openSync, readSync } = require('node:fs') as typeof import('node:fs')
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads')

  interface File {
    path: string
    fd: number | null
    hash: Hash
    offset: number
  }

  const files = new Map<number, File>()
  // One read buffer for every file: each message is handled to its end before the next.
  const buffer = Buffer.allocUnsafe(1024 * 1024)
  const port = parentPort!

  /** Hashes `file` from where it stopped up to `length` bytes (fewer if it is shorter). */
  function catchUp(file: File, length: number): void {
    file.fd ??= openSync(file.path, 'r')
    while (file.offset < length) {
      const want = Math.min(buffer.length, length - file.offset)
      const read = readSync(file.fd, buffer, 0, want, file.offset)
      if (read === 0) return
      file.hash.update(buffer.subarray(0, read))
      file.offset += read
    }
  }

  function close(id: number): void {
    const file = files.get(id)
    files.delete(id)
    if (file?.fd != null) closeSync(file.fd)
  }

  function reply(message: HashReply): void {
    port.postMessage(message)
  }

  port.on('message', (message: HashRequest) => {
    const { id } = message
    try {
      if (message.type === 'start') {
        files.set(id, { path: message.path, fd: null, hash: createHash('sha256'), offset: 0 })
        return
      }
      const file = files.get(id)
      if (!file) return
      if (message.type === 'cancel') return close(id)
      catchUp(file, message.length)
      if (message.type === 'end') {
        if (file.offset !== message.length) {
          throw new Error(`the file has ${file.offset} bytes, not ${message.length}`)
        }
        const sha256 = file.hash.digest('hex')
        close(id)
        reply({ id, sha256 })
      }
    } catch (error) {
      try {
        close(id)
      } finally {
        reply({ id, error: error instanceof Error ? error.message : String(error) })
      }
    }
  })
}
