import type { Asset, Job } from '../model.ts'
import type { Logger } from '../ports/logger.ts'
import type { Queue } from '../ports/queue.ts'
import type { Outbox, Repository } from '../ports/repository.ts'
import type { NewWebhookDelivery, WebhookDelivery } from '../ports/webhooks.ts'
import { createWebhookDispatcher, type WebhookDispatcher } from './webhook-dispatcher.ts'
import { assetWebhookEvent, jobWebhookEvent } from './webhook-events.ts'
import type { WebhookOptions } from './webhook-options.ts'

/** An `Outbox` that remembers what it offered and what the write recorded. */
export interface RecordingOutbox<Subject> extends Outbox<Subject> {
  /** The write asked for the deliveries and its event was news (published now). */
  offered: boolean
  /** The deliveries the write recorded, once it committed. */
  readonly deliveries: WebhookDelivery[]
}

/**
 * The service's side of the webhooks: turns what the service does into events for the
 * dispatcher. Whichever process changes a job (an API process, a worker) publishes its
 * events; the store's unique (endpoint, event) makes a change seen by two processes one
 * delivery.
 *
 * When the deliveries live in the repository's own store (`recordsWithJobs`), a job change
 * records its deliveries in its own transaction through `jobOutbox()`, and `jobWritten`
 * schedules them once it committed: a process killed in between loses no event.
 */
export class ServiceWebhooks {
  readonly dispatcher: WebhookDispatcher
  /** The repository records job deliveries with the job (its store is the dispatcher's). */
  readonly recordsWithJobs: boolean
  /** Jobs seen `progressing` here, so that a progress tick does not publish again. */
  readonly #progressing = new Set<string>()

  constructor(dispatcher: WebhookDispatcher, options: { recordsWithJobs?: boolean } = {}) {
    this.dispatcher = dispatcher
    this.recordsWithJobs = options.recordsWithJobs ?? false
  }

  /**
   * The outbox for one job write: the deliveries of the job's event as written, when
   * `isNews(job)` says the write changed what a watcher sees and the event is one this
   * process has not published yet. Pass it to the repository, then the job to `jobWritten`.
   */
  jobOutbox(isNews: (job: Job) => boolean, { created = false } = {}): RecordingOutbox<Job> {
    return recordingOutbox((job: Job) =>
      isNews(job) && (created || this.#isUnpublished(job))
        ? this.dispatcher.deliveriesOf(jobWebhookEvent(job))
        : null,
    )
  }

  /** The outbox for a job's creation: its `job.submitted` deliveries. */
  newJobOutbox(): RecordingOutbox<Job> {
    return this.jobOutbox(() => true, { created: true })
  }

  /**
   * After a write with `outbox` committed: remembers the event as published (also when
   * another process recorded it first), and schedules the deliveries the write recorded.
   */
  async jobWritten(job: Job, outbox: RecordingOutbox<Job>): Promise<void> {
    if (outbox.offered) this.#published(job)
    await this.dispatcher.schedule(outbox.deliveries)
  }

  /** `job.submitted`, for a job just created. */
  jobCreated(job: Job): Promise<void> {
    return this.dispatcher.publish(jobWebhookEvent(job))
  }

  /** The event of the job's state, when it is one this process has not published yet. */
  async jobChanged(job: Job): Promise<void> {
    if (!this.#isUnpublished(job)) return
    this.#published(job)
    await this.dispatcher.publish(jobWebhookEvent(job))
  }

  /** A change to `submitted` is no news (its event is the creation's); progress ticks publish once. */
  #isUnpublished(job: Job): boolean {
    if (job.state === 'submitted') return false
    return job.state !== 'progressing' || !this.#progressing.has(job.id)
  }

  #published(job: Job): void {
    if (job.state === 'progressing') this.#progressing.add(job.id)
    else this.#progressing.delete(job.id)
  }

  /**
   * The outbox for an asset's creation or deletion: the deliveries of `type` for the asset as
   * written. Pass it to the repository, then to `assetWritten`.
   */
  assetOutbox(type: 'asset.created' | 'asset.deleted'): RecordingOutbox<Asset> {
    return recordingOutbox((asset: Asset) =>
      this.dispatcher.deliveriesOf(assetWebhookEvent(type, asset)),
    )
  }

  /** After a write with `outbox` committed: schedules the deliveries it recorded. */
  assetWritten(outbox: RecordingOutbox<Asset>): Promise<void> {
    return this.dispatcher.schedule(outbox.deliveries)
  }

  assetCreated(asset: Asset): Promise<void> {
    return this.dispatcher.publish(assetWebhookEvent('asset.created', asset))
  }

  assetDeleted(asset: Asset): Promise<void> {
    return this.dispatcher.publish(assetWebhookEvent('asset.deleted', asset))
  }
}

/** An outbox offering what `deliveriesOf` gives (`null`: the write is no news). */
function recordingOutbox<Subject>(
  deliveriesOf: (subject: Subject) => NewWebhookDelivery[] | null,
): RecordingOutbox<Subject> {
  const outbox: RecordingOutbox<Subject> = {
    offered: false,
    deliveries: [],
    deliveriesFor: (subject) => {
      const deliveries = deliveriesOf(subject)
      if (deliveries === null) return []
      outbox.offered = true
      return deliveries
    },
    recorded: (recorded) => void outbox.deliveries.push(...recorded),
  }
  return outbox
}

/**
 * The service's webhooks for its `webhooks` option, on what its repository and queue offer
 * (their `webhookStore()` and `webhookQueue()`), so that deliveries live where the jobs live.
 */
export function serviceWebhooks(
  options: WebhookOptions,
  parts: { repository: Repository; queue: Queue; logger: Logger },
): ServiceWebhooks {
  const repositoryStore = parts.repository.webhookStore?.()
  return new ServiceWebhooks(
    createWebhookDispatcher(options, {
      store: repositoryStore,
      queue: parts.queue.webhookQueue?.(),
      logger: parts.logger,
    }),
    // An app's own `store` is not the repository's: its deliveries cannot join a job's write.
    { recordsWithJobs: repositoryStore !== undefined && options.store === undefined },
  )
}
