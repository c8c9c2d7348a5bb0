import { pageLimit } from '../keys.ts'
import type { Page } from '../model.ts'
import type {
  ListWebhookDeliveriesRequest,
  NewWebhookDelivery,
  WebhookAttempt,
  WebhookDelivery,
  WebhookDeliveryStore,
} from '../ports/webhooks.ts'
import { paginate } from './memory-pagination.ts'

/**
 * Webhook deliveries in this process's memory, for the defaults and the tests: nothing
 * survives a restart.
 */
export class MemoryWebhookStore implements WebhookDeliveryStore {
  readonly #deliveries = new Map<string, WebhookDelivery>()
  /** Delivery id by (endpoint, event key): the unique constraint. */
  readonly #byEvent = new Map<string, string>()

  async create(
    input: NewWebhookDelivery,
  ): Promise<{ delivery: WebhookDelivery; created: boolean }> {
    return this.insert(input)
  }

  /**
   * `create` without yielding, so that the memory repository records a job's deliveries in
   * the same step as the job (its outbox).
   */
  insert(input: NewWebhookDelivery): { delivery: WebhookDelivery; created: boolean } {
    const scope = eventScope(input)
    const existing = this.#byEvent.get(scope)
    if (existing) {
      return { delivery: structuredClone(this.#deliveries.get(existing)!), created: false }
    }
    const delivery: WebhookDelivery = {
      ...structuredClone(input),
      state: 'pending',
      attempts: 0,
      lastStatus: null,
      lastError: null,
      nextAttemptAt: input.createdAt,
      updatedAt: input.createdAt,
      deliveredAt: null,
    }
    this.#deliveries.set(delivery.id, delivery)
    this.#byEvent.set(scope, delivery.id)
    return { delivery: structuredClone(delivery), created: true }
  }

  async get(id: string): Promise<WebhookDelivery | null> {
    const delivery = this.#deliveries.get(id)
    return delivery ? structuredClone(delivery) : null
  }

  async list(request: ListWebhookDeliveriesRequest = {}): Promise<Page<WebhookDelivery>> {
    const matching = [...this.#deliveries.values()].filter(
      (d) =>
        (request.owner === undefined || d.owner === request.owner) &&
        (request.endpointId === undefined || d.endpointId === request.endpointId) &&
        (request.state === undefined || d.state === request.state),
    )
    return paginate(matching, request)
  }

  async recordAttempt(id: string, attempt: WebhookAttempt): Promise<WebhookDelivery | null> {
    const delivery = this.#deliveries.get(id)
    if (!delivery) return null
    if (delivery.state === 'pending') {
      delivery.attempts += 1
      delivery.lastStatus = attempt.status
      delivery.lastError = attempt.error
      delivery.updatedAt = attempt.at
      if (attempt.delivered) {
        delivery.state = 'delivered'
        delivery.deliveredAt = attempt.at
        delivery.nextAttemptAt = null
      } else if (attempt.nextAttemptAt === null) {
        delivery.state = 'failed'
        delivery.nextAttemptAt = null
      } else {
        delivery.nextAttemptAt = attempt.nextAttemptAt
      }
    }
    return structuredClone(delivery)
  }

  async requeue(id: string, at: Date): Promise<WebhookDelivery | null> {
    const delivery = this.#deliveries.get(id)
    if (!delivery || delivery.state === 'pending') return null
    delivery.state = 'pending'
    delivery.nextAttemptAt = at
    delivery.updatedAt = at
    return structuredClone(delivery)
  }

  async listDue(before: Date, limit: number): Promise<WebhookDelivery[]> {
    return [...this.#deliveries.values()]
      .filter((d) => d.state === 'pending' && d.nextAttemptAt && d.nextAttemptAt <= before)
      .sort((a, b) => a.nextAttemptAt!.getTime() - b.nextAttemptAt!.getTime())
      .slice(0, pageLimit(limit))
      .map((d) => structuredClone(d))
  }

  async pruneEnded(before: Date, limit: number): Promise<number> {
    const ended = [...this.#deliveries.values()]
      .filter((d) => d.state !== 'pending' && d.updatedAt < before)
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id))
      .slice(0, limit)
    for (const delivery of ended) {
      this.#deliveries.delete(delivery.id)
      this.#byEvent.delete(eventScope(delivery))
    }
    return ended.length
  }
}

/** Makes an in-memory `WebhookDeliveryStore`. */
export function memoryWebhookStore(): MemoryWebhookStore {
  return new MemoryWebhookStore()
}

/** The one delivery an endpoint gets of an event: the key of the store's unique index. */
function eventScope(delivery: Pick<WebhookDelivery, 'endpointId' | 'eventKey'>): string {
  return JSON.stringify([delivery.endpointId, delivery.eventKey])
}
