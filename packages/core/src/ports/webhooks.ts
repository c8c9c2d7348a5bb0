import type { Owner, Page, PageRequest } from '../model.ts'

/** The events a webhook endpoint can ask for: every job state change, and assets made or deleted. */
export type WebhookEventType =
  | 'job.submitted'
  | 'job.progressing'
  | 'job.complete'
  | 'job.error'
  | 'job.canceled'
  | 'asset.created'
  | 'asset.deleted'

/** Where a delivery stands: waiting for an attempt, received by the endpoint, or given up. */
export type WebhookDeliveryState = 'pending' | 'delivered' | 'failed'

/**
 * One event for one endpoint. Its `id` is the Standard Webhooks `webhook-id`: every attempt,
 * automatic or by hand, sends the same id and the same body.
 */
export interface WebhookDelivery {
  /** `msg_…`: the `webhook-id` header. */
  id: string
  /** The owner of the job or asset the event is about. */
  owner: Owner
  endpointId: string
  eventType: WebhookEventType
  /**
   * What makes the event unique (`job.complete:<job id>`): one delivery per event and
   * endpoint, however many processes see the event.
   */
  eventKey: string
  /** The JSON body, fixed when the delivery is made. */
  payload: string
  state: WebhookDeliveryState
  attempts: number
  /** The HTTP status of the last attempt; `null` before the first or when none came back. */
  lastStatus: number | null
  /** Why the last attempt failed, when it did (`HTTP 503`, `connection refused`, …). */
  lastError: string | null
  /** When the next attempt is due; `null` once delivered or given up. */
  nextAttemptAt: Date | null
  createdAt: Date
  updatedAt: Date
  deliveredAt: Date | null
}

/** A delivery as first written: `pending`, no attempt yet. */
export type NewWebhookDelivery = Pick<
  WebhookDelivery,
  'id' | 'owner' | 'endpointId' | 'eventType' | 'eventKey' | 'payload' | 'createdAt'
>

/** What one attempt came to. */
export interface WebhookAttempt {
  /** The HTTP status, or `null` when no response came (refused, timed out, blocked address). */
  status: number | null
  error: string | null
  /** A 2xx status. */
  delivered: boolean
  /** When to try again; `null` to give up (after a failure) or when delivered. */
  nextAttemptAt: Date | null
  at: Date
}

export interface ListWebhookDeliveriesRequest extends PageRequest {
  /** Only this owner's deliveries. @default every owner's */
  owner?: Owner
  endpointId?: string
  state?: WebhookDeliveryState
}

/**
 * Where webhook deliveries are recorded. The rules a store enforces itself, so that they
 * hold across processes:
 * - `create` with an (endpoint, event key) that exists returns the existing delivery
 *   (`created: false`), by a unique constraint;
 * - `recordAttempt` adds 1 to `attempts`, and never changes a delivery that is not pending;
 * - `requeue` moves a delivered or failed delivery back to pending, once: of two concurrent
 *   calls, one gets it;
 * - listings are newest first with a stable order (`createdAt`, then `id`);
 * - `pruneEnded` never deletes a pending delivery, also one requeued while it runs.
 *
 * @example
 * const { delivery, created } = await store.create(newDelivery)
 * await store.recordAttempt(delivery.id, { status: 204, error: null, delivered: true, nextAttemptAt: null, at: new Date() })
 */
export interface WebhookDeliveryStore {
  create(delivery: NewWebhookDelivery): Promise<{ delivery: WebhookDelivery; created: boolean }>
  get(id: string): Promise<WebhookDelivery | null>
  list(request?: ListWebhookDeliveriesRequest): Promise<Page<WebhookDelivery>>
  /** Returns the delivery afterwards, or `null` when it does not exist. */
  recordAttempt(id: string, attempt: WebhookAttempt): Promise<WebhookDelivery | null>
  /** Returns the delivery made pending (due at `at`), or `null` when it was not delivered or failed. */
  requeue(id: string, at: Date): Promise<WebhookDelivery | null>
  /** Pending deliveries due at or before `before`, oldest first (to hand over again after a crash). */
  listDue(before: Date, limit: number): Promise<WebhookDelivery[]>
  /**
   * Deletes at most `limit` delivered or failed deliveries last changed (`updatedAt`) before
   * `before`, the oldest made first; returns how many. Their (endpoint, event) is free again.
   */
  pruneEnded(before: Date, limit: number): Promise<number>
}

/** One attempt at one delivery, as a queue message. */
export interface WebhookTask {
  deliveryId: string
  /** The delivery's attempt number this message makes (1 for the first). */
  attempt: number
}

export interface WebhookSendOptions {
  /** Wait this long before handing the task to a worker. @default 0 */
  delayMs?: number
}

/**
 * Schedules webhook attempts: a second, named queue beside the jobs' one, on the same backend
 * (in memory, or pg-boss). At least once: a handler that throws (or a worker that dies) sees
 * the task again. Sending the same (delivery, attempt) while it waits or runs does nothing.
 *
 * @example
 * await queue.work(async (task, { signal }) => dispatcher.deliver(task, { signal }))
 * await queue.send({ deliveryId, attempt: 2 }, { delayMs: 30_000 })
 */
export interface WebhookQueue {
  send(task: WebhookTask, options?: WebhookSendOptions): Promise<void>
  work(
    handler: (task: WebhookTask, context: { signal: AbortSignal }) => Promise<void>,
    options?: { concurrency?: number },
  ): Promise<void>
  /** Stops consuming; running handlers are aborted and their tasks left to run again. */
  close(): Promise<void>
}
