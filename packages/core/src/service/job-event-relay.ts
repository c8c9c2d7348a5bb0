import { randomUUID } from 'node:crypto'
import { errorText } from '../logging/error-text.ts'
import { isTerminal, type Job } from '../model.ts'
import type { JobChangeNotice, JobEventChannel } from '../ports/job-events.ts'
import type { Logger } from '../ports/logger.ts'
import type { Repository } from '../ports/repository.ts'
import { fingerprint } from './service-support.ts'

/** Jobs followed at once before the oldest is forgotten (a job that never ends, deleted). */
const MAX_FOLLOWED = 10_000

export interface JobEventRelayOptions {
  channel: JobEventChannel
  repository: Repository
  logger: Logger
  /** Whether anyone here follows this job (a subscriber to all jobs, or a watcher of it). */
  wanted(jobId: string): boolean
  /** Called with the job as the repository has it after another process changed it. */
  changed(job: Job): void
}

/**
 * Joins one service to a `JobEventChannel`: sends a notice for each change this service makes,
 * and turns the notices of other services into the job read from the repository (the notice
 * only says which job changed). Reads are only made for jobs someone here follows, and never
 * more than one at a time per job: notices that come during a read cause one more read.
 */
export class JobEventRelay {
  /** Tells this service's notices from the others' on a shared channel. */
  readonly origin = randomUUID()
  readonly #options: JobEventRelayOptions
  readonly #unsubscribe: () => void
  /** Jobs being read: `true` when another notice came during the read. */
  readonly #reading = new Map<string, boolean>()
  /** What was last passed on per job, so that a notice with no change is silent. */
  readonly #lastSeen = new Map<string, string>()
  #closed = false

  constructor(options: JobEventRelayOptions) {
    this.#options = options
    this.#unsubscribe = options.channel.subscribe((notice) => this.#received(notice))
  }

  /** Tells the other services that this one changed `job`. Never throws: failures are logged. */
  publish(job: Job): void {
    if (this.#closed) return
    const notice = { jobId: job.id, state: job.state, progress: job.progress, origin: this.origin }
    this.#options.channel.publish(notice).catch((error: unknown) => {
      this.#options.logger.warn(
        { jobId: job.id, state: job.state, error: errorText(error) },
        'transcodekit: could not publish a job change to other processes',
      )
    })
  }

  close(): void {
    this.#closed = true
    this.#unsubscribe()
  }

  #received(notice: JobChangeNotice): void {
    if (this.#closed || notice.origin === this.origin) return
    if (!this.#options.wanted(notice.jobId)) return
    if (this.#reading.has(notice.jobId)) {
      this.#reading.set(notice.jobId, true)
      return
    }
    this.#reading.set(notice.jobId, false)
    void this.#read(notice.jobId)
  }

  /** Keeps what was last passed on for a job until it ends; the oldest goes past the cap. */
  #remember(jobId: string, seen: string | null): void {
    this.#lastSeen.delete(jobId)
    if (seen === null) return
    this.#lastSeen.set(jobId, seen)
    if (this.#lastSeen.size > MAX_FOLLOWED) {
      this.#lastSeen.delete(this.#lastSeen.keys().next().value!)
    }
  }

  async #read(jobId: string): Promise<void> {
    try {
      do {
        this.#reading.set(jobId, false)
        const job = await this.#options.repository.getJob(jobId)
        if (!job || this.#closed) return
        const seen = fingerprint(job)
        if (this.#lastSeen.get(jobId) !== seen) {
          this.#remember(jobId, isTerminal(job.state) ? null : seen)
          this.#options.changed(job)
        }
      } while (this.#reading.get(jobId))
    } catch (error) {
      this.#options.logger.warn(
        { jobId, error: errorText(error) },
        'transcodekit: could not read a job another process changed (watchers poll it)',
      )
    } finally {
      this.#reading.delete(jobId)
    }
  }
}
