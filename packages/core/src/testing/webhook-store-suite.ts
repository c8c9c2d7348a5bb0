import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type { NewWebhookDelivery, WebhookDeliveryStore } from '../ports/webhooks.ts'

export interface WebhookStoreUnderTest {
  store: WebhookDeliveryStore
  cleanup?: () => Promise<void>
}

function newDelivery(overrides: Partial<NewWebhookDelivery> = {}): NewWebhookDelivery {
  const subject = randomUUID()
  return {
    id: `msg_${randomUUID().replaceAll('-', '')}`,
    owner: `owner-${randomUUID()}`,
    endpointId: 'ep_main',
    eventType: 'job.complete',
    eventKey: `job.complete:${subject}`,
    payload: JSON.stringify({ type: 'job.complete', data: { id: subject } }),
    createdAt: new Date('2026-11-30T10:00:00.000Z'),
    ...overrides,
  }
}

const ok = (at: Date) => ({ status: 204, error: null, delivered: true, nextAttemptAt: null, at })
const failed = (at: Date, nextAttemptAt: Date | null) => ({
  status: 503,
  error: 'HTTP 503',
  delivered: false,
  nextAttemptAt,
  at,
})

/**
 * The contract every `WebhookDeliveryStore` passes. Each test makes its own ids and owners,
 * so a store may share one database between tests.
 *
 * @example
 * webhookStoreConformance('memory', async () => ({ store: memoryWebhookStore() }))
 */
export function webhookStoreConformance(
  name: string,
  make: () => Promise<WebhookStoreUnderTest>,
): void {
  describe(`WebhookDeliveryStore conformance: ${name}`, () => {
    async function withStore(test: (store: WebhookDeliveryStore) => Promise<void>) {
      const { store, cleanup } = await make()
      try {
        await test(store)
      } finally {
        await cleanup?.()
      }
    }

    it('creates a pending delivery, due now, and gives it back whole', () =>
      withStore(async (store) => {
        const input = newDelivery()
        const { delivery, created } = await store.create(input)
        expect(created).toBe(true)
        expect(delivery).toEqual({
          ...input,
          state: 'pending',
          attempts: 0,
          lastStatus: null,
          lastError: null,
          nextAttemptAt: input.createdAt,
          updatedAt: input.createdAt,
          deliveredAt: null,
        })
        expect(await store.get(input.id)).toEqual(delivery)
        expect(await store.get('msg_missing')).toBeNull()
      }))

    it('makes one delivery per (endpoint, event), concurrently too', () =>
      withStore(async (store) => {
        const first = newDelivery()
        const copies = Array.from({ length: 5 }, () =>
          newDelivery({ eventKey: first.eventKey, owner: first.owner }),
        )
        const results = await Promise.all([first, ...copies].map((d) => store.create(d)))
        expect(results.filter((r) => r.created)).toHaveLength(1)
        const ids = new Set(results.map((r) => r.delivery.id))
        expect(ids.size).toBe(1)
        // Another endpoint gets its own delivery of the same event.
        const other = await store.create(
          newDelivery({ eventKey: first.eventKey, owner: first.owner, endpointId: 'ep_other' }),
        )
        expect(other.created).toBe(true)
      }))

    it('records attempts: a failure with a next try, then a success; nothing after that', () =>
      withStore(async (store) => {
        const { delivery } = await store.create(newDelivery())
        const t1 = new Date('2026-11-30T10:00:01.000Z')
        const next = new Date('2026-11-30T10:00:31.000Z')
        const afterFailure = await store.recordAttempt(delivery.id, failed(t1, next))
        expect(afterFailure).toMatchObject({
          state: 'pending',
          attempts: 1,
          lastStatus: 503,
          lastError: 'HTTP 503',
          nextAttemptAt: next,
        })
        const t2 = new Date('2026-11-30T10:00:32.000Z')
        const afterSuccess = await store.recordAttempt(delivery.id, ok(t2))
        expect(afterSuccess).toMatchObject({
          state: 'delivered',
          attempts: 2,
          lastStatus: 204,
          lastError: null,
          nextAttemptAt: null,
          deliveredAt: t2,
        })
        // A late duplicate attempt changes nothing once delivered.
        const late = await store.recordAttempt(delivery.id, failed(new Date(), null))
        expect(late).toEqual(afterSuccess)
        expect(await store.recordAttempt('msg_missing', ok(new Date()))).toBeNull()
      }))

    it('gives up when no next try is given', () =>
      withStore(async (store) => {
        const { delivery } = await store.create(newDelivery())
        const gaveUp = await store.recordAttempt(delivery.id, {
          status: null,
          error: 'ECONNREFUSED',
          delivered: false,
          nextAttemptAt: null,
          at: new Date(),
        })
        expect(gaveUp).toMatchObject({
          state: 'failed',
          attempts: 1,
          lastStatus: null,
          nextAttemptAt: null,
        })
      }))

    it('requeues a delivered or failed delivery once, never a pending one', () =>
      withStore(async (store) => {
        const { delivery } = await store.create(newDelivery())
        expect(await store.requeue(delivery.id, new Date())).toBeNull()
        await store.recordAttempt(delivery.id, ok(new Date()))
        const at = new Date('2026-11-30T11:00:00.000Z')
        const results = await Promise.all([
          store.requeue(delivery.id, at),
          store.requeue(delivery.id, at),
        ])
        const requeued = results.filter((r) => r !== null)
        expect(requeued).toHaveLength(1)
        expect(requeued[0]).toMatchObject({ state: 'pending', attempts: 1, nextAttemptAt: at })
        expect(await store.requeue('msg_missing', at)).toBeNull()
      }))

    it('lists newest first, by owner, endpoint and state, a page at a time', () =>
      withStore(async (store) => {
        const owner = `owner-${randomUUID()}`
        const made = []
        for (let i = 0; i < 5; i++) {
          const { delivery } = await store.create(
            newDelivery({ owner, createdAt: new Date(Date.UTC(2026, 10, 30, 10, 0, i)) }),
          )
          made.push(delivery)
        }
        await store.create(newDelivery())
        await store.recordAttempt(made[0]!.id, ok(new Date()))
        const first = await store.list({ owner, limit: 3 })
        expect(first.items.map((d) => d.id)).toEqual([made[4]!.id, made[3]!.id, made[2]!.id])
        const second = await store.list({ owner, limit: 3, cursor: first.nextCursor })
        expect(second.items.map((d) => d.id)).toEqual([made[1]!.id, made[0]!.id])
        expect(second.nextCursor).toBeNull()
        const delivered = await store.list({ owner, state: 'delivered' })
        expect(delivered.items.map((d) => d.id)).toEqual([made[0]!.id])
        expect((await store.list({ owner, endpointId: 'ep_none' })).items).toEqual([])
      }))

    it('lists the pending deliveries due, oldest due first', () =>
      withStore(async (store) => {
        const base = Date.now() + 10 * 365 * 86_400_000
        const soon = await store.create(newDelivery())
        const later = await store.create(newDelivery())
        await store.recordAttempt(soon.delivery.id, failed(new Date(), new Date(base + 1000)))
        await store.recordAttempt(later.delivery.id, failed(new Date(), new Date(base + 2000)))
        const due = await store.listDue(new Date(base + 1500), 100)
        const ids = due.map((d) => d.id)
        expect(ids).toContain(soon.delivery.id)
        expect(ids).not.toContain(later.delivery.id)
        expect(ids.indexOf(soon.delivery.id)).toBe(ids.length - 1)
      }))

    it('prunes ended deliveries last changed before a time, oldest first, a batch at a time', () =>
      withStore(async (store) => {
        const at = (minute: number, second = 0) =>
          new Date(Date.UTC(2026, 10, 30, 10, minute, second))
        const make = async (second: number) =>
          (await store.create(newDelivery({ createdAt: at(0, second) }))).delivery
        const [first, second, third] = [await make(1), await make(2), await make(3)]
        await store.recordAttempt(first.id, ok(at(1)))
        await store.recordAttempt(second.id, failed(at(2), null))
        await store.recordAttempt(third.id, ok(at(3)))
        const pending = await make(0)
        await store.recordAttempt(pending.id, failed(at(1), at(60)))
        const endedLater = await make(0)
        await store.recordAttempt(endedLater.id, ok(at(30)))
        const requeued = await make(0)
        await store.recordAttempt(requeued.id, ok(at(1)))
        await store.requeue(requeued.id, at(31))

        const before = at(10)
        expect(await store.pruneEnded(before, 2)).toBe(2)
        expect(await store.get(first.id)).toBeNull()
        expect(await store.get(second.id)).toBeNull()
        expect(await store.get(third.id)).not.toBeNull()
        expect(await store.pruneEnded(before, 100)).toBe(1)
        expect(await store.pruneEnded(before, 100)).toBe(0)
        const kept = (await store.list({ limit: 100 })).items.map((d) => d.id)
        expect(kept.sort()).toEqual([pending.id, endedLater.id, requeued.id].sort())
        // The event is free again: publishing it once more makes a new delivery.
        const again = await store.create(
          newDelivery({ eventKey: first.eventKey, owner: first.owner }),
        )
        expect(again.created).toBe(true)
      }))
  })
}
