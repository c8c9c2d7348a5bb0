import type { Asset, Job } from '../model.ts'
import type { Logger } from '../ports/logger.ts'
import type { Queue } from '../ports/queue.ts'
import type { Repository } from '../ports/repository.ts'
import { createWebhookDispatcher, type WebhookDispatcher } from './webhook-dispatcher.ts'
import { assetWebhookEvent, jobWebhookEvent } from './webhook-events.ts'
import type { WebhookOptions } from './webhook-options.ts'

/**
 * The service's side of the webhooks: turns what the service does into events for the
 * dispatcher. Whichever process changes a job (an API process, a worker) publishes its
 * events; the store's unique (endpoint, event) makes a change seen by two processes one
 * delivery.
 */
export class ServiceWebhooks {
  readonly dispatcher: WebhookDispatcher
  /** Jobs seen `progressing` here, so that a progress tick does not publish again. */
  readonly #progressing = new Set<string>()

  constructor(dispatcher: WebhookDispatcher) {
    this.dispatcher = dispatcher
  }

  /** `job.submitted`, for a job just created. */
  jobCreated(job: Job): Promise<void> {
    return this.dispatcher.publish(jobWebhookEvent(job))
  }

  /** The event of the job's state, when it is one this process has not published yet. */
  async jobChanged(job: Job): Promise<void> {
    if (job.state === 'submitted') return
    if (job.state === 'progressing') {
      if (this.#progressing.has(job.id)) return
      this.#progressing.add(job.id)
    } else {
      this.#progressing.delete(job.id)
    }
    await this.dispatcher.publish(jobWebhookEvent(job))
  }

  assetCreated(asset: Asset): Promise<void> {
    return this.dispatcher.publish(assetWebhookEvent('asset.created', asset))
  }

  assetDeleted(asset: Asset): Promise<void> {
    return this.dispatcher.publish(assetWebhookEvent('asset.deleted', asset))
  }
}

/**
 * The service's webhooks for its `webhooks` option, on what its repository and queue offer
 * (their `webhookStore()` and `webhookQueue()`), so that deliveries live where the jobs live.
 */
export function serviceWebhooks(
  options: WebhookOptions,
  parts: { repository: Repository; queue: Queue; logger: Logger },
): ServiceWebhooks {
  return new ServiceWebhooks(
    createWebhookDispatcher(options, {
      store: parts.repository.webhookStore?.(),
      queue: parts.queue.webhookQueue?.(),
      logger: parts.logger,
    }),
  )
}
