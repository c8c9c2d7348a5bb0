import { randomUUID } from 'node:crypto'
import { InvalidStateError, NotFoundError } from '../errors.ts'
import { consoleLogger } from '../logging/console-logger.ts'
import { errorText } from '../logging/error-text.ts'
import type { Owner, Page } from '../model.ts'
import type { Logger } from '../ports/logger.ts'
import type {
  ListWebhookDeliveriesRequest,
  NewWebhookDelivery,
  WebhookDelivery,
  WebhookDeliveryStore,
  WebhookQueue,
  WebhookTask,
} from '../ports/webhooks.ts'
import { inProcessWebhookQueue } from '../queue/in-process-webhook-queue.ts'
import { memoryWebhookStore } from '../repository/memory-webhook-store.ts'
import { type WebhookEvent, webhookPayload } from './webhook-events.ts'
import {
  type ResolvedEndpoint,
  type ResolvedWebhookOptions,
  resolveWebhookOptions,
  type WebhookOptions,
} from './webhook-options.ts'
import { sendWebhook } from './webhook-sender.ts'

export interface WebhookDispatcherParts {
  options: ResolvedWebhookOptions
  store: WebhookDeliveryStore
  queue: WebhookQueue
  logger: Logger
  /** The dispatcher made the queue, and closes it in `close()`. @default false */
  ownsQueue?: boolean
}

/** Pending deliveries `resume()` reads at a time. */
const RESUME_PAGE = 100

/**
 * Turns events into signed deliveries: records one delivery per (event, endpoint) in the store
 * (whose unique constraint makes a second publish of one event a no-op, in any process),
 * schedules its attempts on the queue, and records each attempt's outcome. A failed attempt
 * schedules the next one with exponential backoff, until `maxAttempts`.
 */
export class WebhookDispatcher {
  readonly store: WebhookDeliveryStore
  readonly queue: WebhookQueue
  readonly #options: ResolvedWebhookOptions
  readonly #logger: Logger
  readonly #ownsQueue: boolean
  #sweeper: ReturnType<typeof setInterval> | null = null

  constructor(parts: WebhookDispatcherParts) {
    this.store = parts.store
    this.queue = parts.queue
    this.#options = parts.options
    this.#logger = parts.logger
    this.#ownsQueue = parts.ownsQueue ?? false
  }

  /** The configured endpoints' ids. */
  get endpointIds(): string[] {
    return [...this.#options.endpoints.keys()]
  }

  /** Starts delivering from this process (unless `worker: false`), and hands over what was left pending. */
  async start(): Promise<void> {
    if (this.#options.workerConcurrency === null) return
    await this.queue.work((task, { signal }) => this.deliver(task, signal), {
      concurrency: this.#options.workerConcurrency,
    })
    await this.resume()
    this.#sweeper = setInterval(() => void this.#sweep(), this.#options.sweepIntervalMs)
    this.#sweeper.unref()
  }

  /**
   * Records a delivery of `event` for every endpoint that wants it and schedules its first
   * attempt. A failure for one endpoint is logged and does not stop the others: the event
   * happened whatever a receiver's fate.
   */
  async publish(event: WebhookEvent): Promise<void> {
    for (const delivery of this.deliveriesOf(event)) {
      try {
        const { delivery: recorded, created } = await this.store.create(delivery)
        if (created) await this.queue.send({ deliveryId: recorded.id, attempt: 1 })
      } catch (error) {
        this.#logger.error(
          {
            endpointId: delivery.endpointId,
            event: event.type,
            subjectId: event.subjectId,
            error: errorText(error),
          },
          'transcodekit: could not record or schedule a webhook delivery',
        )
      }
    }
  }

  /**
   * The deliveries of `event`, one for every endpoint that wants it, not recorded yet: what
   * `publish` records, or what a repository records with the change the event announces.
   */
  deliveriesOf(event: WebhookEvent): NewWebhookDelivery[] {
    const payload = webhookPayload(event)
    const deliveries: NewWebhookDelivery[] = []
    for (const endpoint of this.#options.endpoints.values()) {
      if (!endpoint.events.has(event.type)) continue
      if (endpoint.owner !== undefined && endpoint.owner !== event.owner) continue
      deliveries.push({
        id: `msg_${randomUUID().replaceAll('-', '')}`,
        owner: event.owner,
        endpointId: endpoint.id,
        eventType: event.type,
        eventKey: `${event.type}:${event.subjectId}`,
        payload,
        createdAt: new Date(),
      })
    }
    return deliveries
  }

  /**
   * Schedules the first attempt of deliveries recorded elsewhere (with a job change). A failed
   * send is logged and not thrown: the delivery is recorded, so the sweep sends it.
   */
  async schedule(deliveries: WebhookDelivery[]): Promise<void> {
    for (const delivery of deliveries) {
      try {
        await this.#scheduleNext(delivery)
      } catch (error) {
        this.#logger.error(
          { deliveryId: delivery.id, event: delivery.eventType, error: errorText(error) },
          'transcodekit: could not schedule a recorded webhook delivery; the sweep will',
        )
      }
    }
  }

  /**
   * The queue handler: makes the attempt `task` names, records it, and schedules the next
   * one after a failure. A task whose attempt is already recorded (a duplicate, or a rerun
   * after the queue lost the scheduling) only makes sure the next attempt is scheduled.
   */
  async deliver(task: WebhookTask, signal?: AbortSignal): Promise<void> {
    const delivery = await this.store.get(task.deliveryId)
    if (delivery?.state !== 'pending') return
    if (delivery.attempts >= task.attempt) {
      await this.#scheduleNext(delivery)
      return
    }
    const endpoint = this.#options.endpoints.get(delivery.endpointId)
    const at = new Date()
    const outcome = endpoint
      ? await this.#attempt(endpoint, delivery, at, signal)
      : { status: null, error: `endpoint ${delivery.endpointId} is no longer configured` }
    // Stopped by a shutdown: no verdict on the receiver; the task runs again.
    if (signal?.aborted) throw signal.reason
    const delivered = outcome.status !== null && outcome.status >= 200 && outcome.status < 300
    const attempts = delivery.attempts + 1
    const retry = !delivered && endpoint !== undefined && attempts < this.#options.maxAttempts
    const recorded = await this.store.recordAttempt(delivery.id, {
      status: outcome.status,
      error: delivered ? null : (outcome.error ?? `HTTP ${outcome.status}`),
      delivered,
      nextAttemptAt: retry ? new Date(at.getTime() + this.#backoff(attempts)) : null,
      at,
    })
    if (!recorded) return
    try {
      this.#options.onAttempt(recorded)
    } catch (error) {
      this.#logger.error(
        { deliveryId: recorded.id, error: errorText(error) },
        'transcodekit: the webhooks onAttempt callback threw',
      )
    }
    if (recorded.state === 'failed') {
      this.#logger.warn(
        {
          deliveryId: recorded.id,
          endpointId: recorded.endpointId,
          event: recorded.eventType,
          attempts: recorded.attempts,
          error: recorded.lastError,
        },
        'transcodekit: a webhook delivery failed its last attempt',
      )
    }
    await this.#scheduleNext(recorded)
  }

  /** Deliveries, newest first; with `owner`, only that owner's. */
  list(request: ListWebhookDeliveriesRequest = {}): Promise<Page<WebhookDelivery>> {
    return this.store.list(request)
  }

  /** One delivery; another owner's is a `NotFoundError`. */
  async get(id: string, scope: { owner?: Owner } = {}): Promise<WebhookDelivery> {
    const delivery = await this.store.get(id)
    if (!delivery || (scope.owner !== undefined && delivery.owner !== scope.owner)) {
      throw new NotFoundError('webhook delivery', id)
    }
    return delivery
  }

  /**
   * Sends a delivered or failed delivery again, with the same `webhook-id` and body, now.
   * A delivery still pending is an `InvalidStateError`: its next attempt is already due.
   */
  async redeliver(id: string, scope: { owner?: Owner } = {}): Promise<WebhookDelivery> {
    await this.get(id, scope)
    const requeued = await this.store.requeue(id, new Date())
    if (!requeued) {
      throw new InvalidStateError(`webhook delivery ${id} is already waiting for its next attempt`)
    }
    await this.queue.send({ deliveryId: id, attempt: requeued.attempts + 1 })
    return requeued
  }

  /**
   * Schedules the next attempt of every pending delivery, a page at a time (after a crash
   * between recording and scheduling, or a restart that lost an in-memory queue). A task
   * already waiting or running is not scheduled twice (the queue's rule). Returns how many.
   */
  async resume(): Promise<number> {
    let count = 0
    let cursor: string | null = null
    do {
      const page: Page<WebhookDelivery> = await this.store.list({
        state: 'pending',
        limit: RESUME_PAGE,
        cursor,
      })
      for (const delivery of page.items) await this.#scheduleNext(delivery)
      count += page.items.length
      cursor = page.nextCursor
    } while (cursor)
    return count
  }

  /** Stops delivering: closes the queue if the dispatcher made it. */
  async close(): Promise<void> {
    if (this.#sweeper) clearInterval(this.#sweeper)
    this.#sweeper = null
    if (this.#ownsQueue) await this.queue.close()
  }

  /**
   * Schedules again the oldest pending deliveries overdue by a sweep interval (their task was
   * lost; one still waiting or running is not scheduled twice: the queue's rule), then deletes
   * a batch of the deliveries that ended longer than `retainEndedMs` ago. Failures are logged;
   * the next sweep tries again.
   */
  async #sweep(): Promise<void> {
    try {
      const overdue = new Date(Date.now() - this.#options.sweepIntervalMs)
      for (const delivery of await this.store.listDue(overdue, RESUME_PAGE)) {
        if (this.#sweeper === null) return
        await this.#scheduleNext(delivery)
      }
    } catch (error) {
      this.#logger.error(
        { error: errorText(error) },
        'transcodekit: the sweep for overdue webhook deliveries failed',
      )
    }
    await this.#pruneEnded()
  }

  async #pruneEnded(): Promise<void> {
    const { retainEndedMs, pruneBatchSize } = this.#options
    if (this.#sweeper === null || retainEndedMs === Number.POSITIVE_INFINITY) return
    try {
      await this.store.pruneEnded(new Date(Date.now() - retainEndedMs), pruneBatchSize)
    } catch (error) {
      this.#logger.error(
        { error: errorText(error) },
        'transcodekit: deleting the webhook deliveries past their retention failed',
      )
    }
  }

  async #scheduleNext(delivery: WebhookDelivery): Promise<void> {
    if (delivery.state !== 'pending' || !delivery.nextAttemptAt) return
    await this.queue.send(
      { deliveryId: delivery.id, attempt: delivery.attempts + 1 },
      { delayMs: Math.max(0, delivery.nextAttemptAt.getTime() - Date.now()) },
    )
  }

  #attempt(endpoint: ResolvedEndpoint, delivery: WebhookDelivery, at: Date, signal?: AbortSignal) {
    const o = this.#options
    return sendWebhook(
      {
        url: endpoint.url,
        secret: endpoint.secret,
        id: delivery.id,
        payload: delivery.payload,
        at,
      },
      {
        allowPrivateAddresses: o.allowPrivateAddresses,
        connectTimeoutMs: o.connectTimeoutMs,
        timeoutMs: o.timeoutMs,
        maxResponseBytes: o.maxResponseBytes,
        resolve: o.resolve,
      },
      signal,
    )
  }

  /** The wait after `attempts` failed attempts: retryDelayMs, doubled each time, capped. */
  #backoff(attempts: number): number {
    const { retryDelayMs, retryDelayMaxMs } = this.#options
    return Math.min(retryDelayMaxMs, retryDelayMs * 2 ** Math.min(attempts - 1, 30))
  }
}

/**
 * Makes the dispatcher for `options`: the store and queue default to what the caller's
 * repository and job queue offer (`fallback`), then to memory.
 *
 * @example
 * const webhooks = createWebhookDispatcher({ endpoints: [{ url, secret }] })
 * await webhooks.start()
 * await webhooks.publish(jobWebhookEvent(job))
 */
export function createWebhookDispatcher(
  options: WebhookOptions,
  fallback: { store?: WebhookDeliveryStore; queue?: WebhookQueue; logger?: Logger } = {},
): WebhookDispatcher {
  const resolved = resolveWebhookOptions(options)
  const logger = options.logger ?? fallback.logger ?? consoleLogger()
  const queue = options.queue ?? fallback.queue
  return new WebhookDispatcher({
    options: resolved,
    store: options.store ?? fallback.store ?? memoryWebhookStore(),
    queue: queue ?? inProcessWebhookQueue({ logger }),
    logger,
    ownsQueue: options.queue === undefined,
  })
}
