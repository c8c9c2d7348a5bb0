import { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import type { SpawnedProcess } from './spawner.ts'

/**
 * A child process run by someone else (the launcher), driven by the events it reports. It
 * behaves as Node's `ChildProcess` does for the engine and the probe: `spawn`, then output
 * on `stdout`/`stderr`, `exit`, and `close` once the output is delivered; or `error`.
 */
export class LaunchedProcess extends EventEmitter implements SpawnedProcess {
  pid: number | undefined = undefined
  exitCode: number | null = null
  signalCode: NodeJS.Signals | null = null
  readonly stdout = new Readable({ read() {} })
  readonly stderr = new Readable({ read() {} })
  #ended = false
  readonly #sendKill: (signal: NodeJS.Signals) => void

  constructor(sendKill: (signal: NodeJS.Signals) => void) {
    super()
    this.#sendKill = sendKill
  }

  /** A child that never started, for `error` (emitted on the next tick). */
  static failed(error: unknown): LaunchedProcess {
    const child = new LaunchedProcess(() => {})
    queueMicrotask(() => child.failed(error))
    return child
  }

  /** Whether it has ended (closed or failed): nothing more will be reported. */
  get ended(): boolean {
    return this.#ended
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.#ended || this.pid === undefined || this.exitCode !== null || this.signalCode) {
      return false
    }
    this.#sendKill(signal)
    return true
  }

  spawned(pid: number): void {
    this.pid = pid
    this.emit('spawn')
  }

  data(fd: 1 | 2, chunk: Uint8Array): void {
    const stream = fd === 1 ? this.stdout : this.stderr
    stream.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
  }

  exited(code: number | null, signal: NodeJS.Signals | null): void {
    this.exitCode = code
    this.signalCode = signal
    this.emit('exit', code, signal)
  }

  closed(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#ended) return
    this.#ended = true
    this.exitCode ??= code
    this.signalCode ??= signal
    this.stdout.push(null)
    this.stderr.push(null)
    // After the 'data' of what was pushed last, as a ChildProcess's 'close' comes after its output.
    setImmediate(() => this.emit('close', code, signal))
  }

  /** It could not start, or was lost: `error` once, then nothing more. */
  failed(error: unknown): void {
    if (this.#ended) return
    this.#ended = true
    this.stdout.push(null)
    this.stderr.push(null)
    this.emit('error', error)
  }

  /** An `error` the launcher reported: it may still be followed by `close`. */
  reportError(error: Error): void {
    if (!this.#ended) this.emit('error', error)
  }
}
