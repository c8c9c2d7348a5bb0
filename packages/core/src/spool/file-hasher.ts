import { Worker } from 'node:worker_threads'
import type { HashReply, HashRequest } from './hash-protocol.ts'
import { hashThread } from './hash-worker.ts'

// The thread holds a 1 MiB read buffer and a hash per file, and makes little garbage: a
// small young generation keeps its memory low.
const RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 2 }

/** The sha256 of one file being written, computed by the hashing thread as it grows. */
export interface FileHash {
  /** The file now holds at least `length` bytes: the thread may hash up to there. */
  written(length: number): void
  /** The file is complete at `length` bytes: resolves with its sha256 (hex). */
  end(length: number): Promise<string>
  /** The file is abandoned: the thread forgets it. */
  cancel(): void
}

interface Waiting {
  resolve(sha256: string): void
  reject(error: Error): void
}

/**
 * Hashes files with sha256 on a thread of its own while they are being written, so that an
 * upload's hashing costs its request no time: the writer says how far the file is written,
 * the thread reads that much back from the page cache and hashes it, and at the end only
 * the last stretch is left to hash. One thread serves every file (sha256 runs at over
 * 1 GiB/s, faster than uploads arrive); it starts with the first file and does not keep the
 * process alive.
 */
export class FileHasher {
  #worker: Worker | null = null
  #waiting = new Map<number, Waiting>()
  #nextId = 0

  /** Starts hashing the file at `path`, which must exist before `written` or `end` is called. */
  begin(path: string): FileHash {
    const worker = this.#thread()
    const id = this.#nextId++
    const send = (message: HashRequest) => worker.postMessage(message)
    send({ type: 'start', id, path })
    let ended = false
    return {
      written: (length) => {
        if (!ended) send({ type: 'written', id, length })
      },
      end: (length) => {
        ended = true
        return new Promise<string>((resolve, reject) => {
          if (this.#worker !== worker) {
            reject(new Error('the hashing thread stopped'))
            return
          }
          this.#waiting.set(id, { resolve, reject })
          send({ type: 'end', id, length })
        })
      },
      cancel: () => {
        if (ended) return
        ended = true
        send({ type: 'cancel', id })
      },
    }
  }

  /** Stops the thread; files still being hashed fail. */
  async close(): Promise<void> {
    const worker = this.#worker
    this.#worker = null
    if (worker) await worker.terminate()
    this.#failAll(new Error('the file hasher was closed'))
  }

  #thread(): Worker {
    if (this.#worker) return this.#worker
    const worker = new Worker(`(${hashThread})()`, {
      eval: true,
      resourceLimits: RESOURCE_LIMITS,
    })
    worker.unref()
    worker.on('message', (reply: HashReply) => {
      const waiting = this.#waiting.get(reply.id)
      if (!waiting) return
      this.#waiting.delete(reply.id)
      if ('sha256' in reply) waiting.resolve(reply.sha256)
      else waiting.reject(new Error(`hashing failed: ${reply.error}`))
    })
    const stopped = (error: Error) => {
      if (this.#worker !== worker) return
      this.#worker = null
      this.#failAll(error)
    }
    worker.on('error', (error) => stopped(error))
    worker.on('exit', (code) => stopped(new Error(`the hashing thread exited with ${code}`)))
    this.#worker = worker
    return worker
  }

  #failAll(error: Error): void {
    for (const waiting of this.#waiting.values()) waiting.reject(error)
    this.#waiting.clear()
  }
}
