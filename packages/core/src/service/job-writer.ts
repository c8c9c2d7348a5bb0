import { isTerminal, type Job } from '../model.ts'
import type { Logger } from '../ports/logger.ts'
import type { JobPatch, NewJob, Repository } from '../ports/repository.ts'
import type { ServiceWebhooks } from '../webhooks/service-webhooks.ts'
import type { JobEventHub } from './job-events.ts'
import { fingerprint } from './service-support.ts'

/**
 * Writes job changes and announces each one that changed what a watcher sees; a job that
 * fails is logged here, once, with its code. Each state change is published as a webhook
 * event, when the service has webhooks, before the change is returned: recorded in the
 * change's own transaction when the repository holds the deliveries (a transactional
 * outbox), else published just after it.
 */
export class JobWriter {
  readonly #repository: Repository
  readonly #events: JobEventHub
  readonly #logger: Logger
  /** The fingerprint of each unfinished job as last announced, so a no-op update is silent. */
  readonly #lastSeen = new Map<string, string>()
  readonly #webhooks: ServiceWebhooks | null

  constructor(
    repository: Repository,
    events: JobEventHub,
    logger: Logger,
    webhooks: ServiceWebhooks | null = null,
  ) {
    this.#repository = repository
    this.#events = events
    this.#logger = logger
    this.#webhooks = webhooks
  }

  /**
   * Creates the job (or finds the one under its idempotency key), and announces it when it
   * is new.
   */
  async create(input: NewJob): Promise<{ job: Job; created: boolean; requestHash: string }> {
    const outbox = this.#webhooks?.recordsWithJobs ? this.#webhooks.newJobOutbox() : undefined
    const result = await this.#repository.createJob(input, outbox && { outbox })
    if (result.created) {
      this.#events.emit({ type: 'job.created', job: result.job })
      if (outbox) await this.#webhooks?.jobWritten(result.job, outbox)
      else await this.#webhooks?.jobCreated(result.job)
    }
    return result
  }

  async update(id: string, patch: JobPatch): Promise<Job | null> {
    const before = this.#lastSeen.get(id)
    const isNews = (job: Job) => fingerprint(job) !== before
    const outbox = this.#webhooks?.recordsWithJobs ? this.#webhooks.jobOutbox(isNews) : undefined
    const job = await this.#repository.updateJob(id, patch, outbox && { outbox })
    if (job && isNews(job)) {
      this.#lastSeen.set(id, fingerprint(job))
      if (isTerminal(job.state)) this.#lastSeen.delete(id)
      if (job.state === 'error' && patch.state === 'error') {
        this.#logger.warn(
          { jobId: job.id, code: job.errorCode, message: job.errorMessage },
          'transcode job failed',
        )
      }
      this.#events.emit({ type: 'job.updated', job })
      if (outbox) await this.#webhooks?.jobWritten(job, outbox)
      else await this.#webhooks?.jobChanged(job)
    }
    return job
  }
}
