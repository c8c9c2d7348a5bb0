import { EventEmitter, on } from 'node:events'
import type { Job } from '../model.ts'

/** Sent to subscribers whenever a job changes. */
export interface JobEvent {
  type: 'job.created' | 'job.updated'
  job: Job
}

/** Fans the job changes this process makes or sees out to subscribers and to watchers. */
export class JobEventHub {
  readonly #emitter = new EventEmitter({ captureRejections: false })

  constructor() {
    this.#emitter.setMaxListeners(0)
  }

  emit(event: JobEvent): void {
    this.#emitter.emit('job', event)
    this.#emitter.emit(`job:${event.job.id}`, event.job)
  }

  /** Calls `listener` with every event; returns the function that stops it. */
  subscribe(listener: (event: JobEvent) => void): () => void {
    this.#emitter.on('job', listener)
    return () => this.#emitter.off('job', listener)
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
