import { EventEmitter, on } from 'node:events'
import type { Job } from '../model.ts'

/** Sent to subscribers whenever a job changes. */
export interface JobEvent {
  type: 'job.created' | 'job.updated'
  job: Job
  /** `true` when another process made the change (seen through the `jobEvents` channel). */
  remote?: boolean
}

/**
 * Fans the job changes this process makes or sees out to subscribers and to watchers, and
 * the ones it makes to the other processes (`connect`).
 */
export class JobEventHub {
  readonly #emitter = new EventEmitter({ captureRejections: false })
  #publish: ((job: Job) => void) | null = null

  constructor() {
    this.#emitter.setMaxListeners(0)
  }

  /** Sends each change this process makes on to the other processes too. */
  connect(publish: (job: Job) => void): void {
    this.#publish = publish
  }

  /** A change this process made. */
  emit(event: JobEvent): void {
    this.#fanOut(event)
    this.#publish?.(event.job)
  }

  /** A change another process made, as read back: for this process only. */
  received(job: Job): void {
    this.#fanOut({ type: 'job.updated', job, remote: true })
  }

  /** Whether anyone here follows the job: a subscriber to every job, or a watcher of it. */
  wants(id: string): boolean {
    return this.#emitter.listenerCount('job') > 0 || this.#emitter.listenerCount(`job:${id}`) > 0
  }

  #fanOut(event: JobEvent): void {
    this.#emitter.emit('job', event)
    if (!event.remote) this.#emitter.emit('job:here', event)
    this.#emitter.emit(`job:${event.job.id}`, event.job)
  }

  /** Calls `listener` with every event; returns the function that stops it. */
  subscribe(listener: (event: JobEvent) => void, options: { remote?: boolean } = {}): () => void {
    // Listeners of this process's changes only are kept apart, so that they cause no reads.
    const name = (options.remote ?? true) ? 'job' : 'job:here'
    this.#emitter.on(name, listener)
    return () => this.#emitter.off(name, listener)
  }

  /**
   * The changes of one job, from now until `signal` aborts (then a pending read rejects).
   * The listener is in place when this returns, before the first read.
   */
  changesOf(id: string, signal: AbortSignal): AsyncIterator<Job> {
    const events = on(this.#emitter, `job:${id}`, { signal })
    return {
      next: async () => {
        const read = await events.next()
        return read.done ? read : { done: false, value: read.value[0] as Job }
      },
    }
  }

  close(): void {
    this.#emitter.removeAllListeners()
  }
}
