import { randomUUID } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import {
  assetWebhookEvent,
  createWebhookDispatcher,
  InvalidStateError,
  jobWebhookEvent,
  memoryWebhookStore,
  NotFoundError,
  type WebhookDelivery,
  type WebhookDeliveryStore,
  type WebhookDispatcher,
  type WebhookOptions,
} from '../../src/index.ts'
import {
  startWebhookReceiver,
  type WebhookReceiver,
  webhookSecret,
} from '../../src/testing/index.ts'
import { untilDelivery, untilGone } from '../support/until-delivery.ts'

const silent = { info() {}, warn() {}, error() {} }
const open: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close()
})

async function receiver(secret: string): Promise<WebhookReceiver> {
  const started = await startWebhookReceiver(secret)
  open.push({ close: () => started.stop() })
  return started
}

async function dispatcher(options: WebhookOptions): Promise<WebhookDispatcher> {
  const made = createWebhookDispatcher({
    allowPrivateAddresses: true,
    retryDelayMs: 20,
    retryDelayMaxMs: 200,
    logger: silent,
    ...options,
  })
  open.push(made)
  await made.start()
  return made
}

function job(owner = 'alice') {
  const now = new Date()
  return {
    id: randomUUID(),
    owner,
    assetId: randomUUID(),
    engine: 'ffmpeg',
    engineJobId: null,
    state: 'complete' as const,
    progress: 100,
    errorCode: null,
    errorMessage: null,
    idempotencyKey: null,
    attempts: 1,
    outputs: [],
    createdAt: now,
    updatedAt: now,
    finishedAt: now,
  }
}

async function only(store: WebhookDeliveryStore, owner?: string): Promise<WebhookDelivery> {
  const { items } = await store.list({ owner })
  expect(items).toHaveLength(1)
  return items[0]!
}

describe('WebhookDispatcher', () => {
  it('delivers a signed Standard Webhooks message, once per event and endpoint', async () => {
    const secret = webhookSecret()
    const hooks = await receiver(secret)
    const store = memoryWebhookStore()
    const attempts: string[] = []
    const webhooks = await dispatcher({
      store,
      endpoints: [{ url: hooks.url, secret }],
      onAttempt: (d) => attempts.push(`${d.state}:${d.lastStatus}`),
    })
    const done = job()
    await webhooks.publish(jobWebhookEvent(done))
    await webhooks.publish(jobWebhookEvent(done))
    const got = await hooks.next((w) => w.type === 'job.complete')
    expect(got.data).toMatchObject({
      id: done.id,
      owner: 'alice',
      state: 'complete',
      progress: 100,
    })
    expect(got.id).toMatch(/^msg_[0-9a-f]{32}$/)
    const delivery = await untilDelivery(store, got.id, (d) => d.state === 'delivered')
    expect(delivery).toMatchObject({
      attempts: 1,
      lastStatus: 204,
      lastError: null,
      owner: 'alice',
    })
    expect(await store.list()).toMatchObject({ items: [{ id: got.id }] })
    expect(hooks.rejected).toBe(0)
    expect(attempts).toEqual(['delivered:204'])
  })

  it('keeps trying while the receiver is down, and delivers the same webhook id when it returns', async () => {
    const secret = webhookSecret()
    const hooks = await receiver(secret)
    await hooks.stop()
    const store = memoryWebhookStore()
    const webhooks = await dispatcher({
      store,
      endpoints: [{ url: hooks.url, secret }],
      maxAttempts: 20,
    })
    await webhooks.publish(jobWebhookEvent(job()))
    const pending = await only(store)
    const failing = await untilDelivery(store, pending.id, (d) => d.attempts >= 2)
    expect(failing).toMatchObject({ state: 'pending', lastStatus: null })
    expect(failing.lastError).toMatch(/ECONNREFUSED/)
    expect(failing.nextAttemptAt).toBeInstanceOf(Date)
    await hooks.start()
    const got = await hooks.next()
    expect(got.id).toBe(pending.id)
    const delivered = await untilDelivery(store, pending.id, (d) => d.state === 'delivered')
    expect(delivered.attempts).toBeGreaterThanOrEqual(3)
    expect(hooks.received.every((w) => w.id === pending.id)).toBe(true)
  })

  it('hands over every pending delivery at start, not only the first hundred', async () => {
    const secret = webhookSecret()
    const hooks = await receiver(secret)
    const store = memoryWebhookStore()
    const endpoints = [{ id: 'main', url: hooks.url, secret }]
    // A process that only records (as one whose in-memory queue died with it).
    const recorder = await dispatcher({ store, endpoints, worker: false })
    for (let i = 0; i < 150; i++) await recorder.publish(jobWebhookEvent(job()))
    const ids: string[] = []
    for (let cursor: string | null = null; ; ) {
      const page = await store.list({ state: 'pending', limit: 100, cursor })
      ids.push(...page.items.map((d) => d.id))
      cursor = page.nextCursor
      if (!cursor) break
    }
    expect(ids).toHaveLength(150)

    await dispatcher({ store, endpoints })
    for (const id of ids) {
      await untilDelivery(store, id, (d) => d.state === 'delivered', 5000)
    }
    expect(new Set(hooks.received.map((w) => w.id)).size).toBe(150)
  })

  it('a running worker picks up, by its sweep, a due delivery no task of its queue carries', async () => {
    const secret = webhookSecret()
    const hooks = await receiver(secret)
    const store = memoryWebhookStore()
    const endpoints = [{ id: 'main', url: hooks.url, secret }]
    // Started first: its resume() saw nothing.
    await dispatcher({ store, endpoints, sweepIntervalMs: 20 })
    // Another process records a delivery, and its task is lost with that process's queue.
    const recorder = await dispatcher({ store, endpoints, worker: false })
    await recorder.publish(jobWebhookEvent(job()))
    await recorder.close()
    const { id } = await only(store)
    const got = await hooks.next()
    expect(got.id).toBe(id)
    expect(await untilDelivery(store, id, (d) => d.state === 'delivered')).toMatchObject({
      attempts: 1,
    })
  })

  it('its sweep deletes the deliveries that ended longer than retainEndedMs ago, not the others', async () => {
    const secret = webhookSecret()
    const hooks = await receiver(secret)
    const store = memoryWebhookStore()
    const endpoints = [{ id: 'main', url: hooks.url, secret }]
    // Pending since yesterday, its next attempt far off: old, but not ended.
    const { delivery: waiting } = await store.create({
      id: 'msg_waiting',
      owner: 'alice',
      endpointId: 'main',
      eventType: 'job.complete',
      eventKey: 'job.complete:waiting',
      payload: '{}',
      createdAt: new Date(Date.now() - 86_400_000),
    })
    await store.recordAttempt(waiting.id, {
      status: 503,
      error: 'HTTP 503',
      delivered: false,
      nextAttemptAt: new Date(Date.now() + 86_400_000),
      at: new Date(Date.now() - 86_400_000),
    })
    await dispatcher({ store, endpoints, sweepIntervalMs: 20, retainEndedMs: 1 })
    const recorder = await dispatcher({ store, endpoints, worker: false })
    await recorder.publish(jobWebhookEvent(job()))
    const { id } = (await store.list()).items.find((d) => d.id !== waiting.id)!
    // The sweep hands it over (the recorder's task stays in its own queue), then prunes it.
    expect((await hooks.next()).id).toBe(id)
    await untilGone(store, id)
    expect(await store.get(waiting.id)).toMatchObject({ state: 'pending', attempts: 1 })
  })

  it('gives up after maxAttempts; a redelivery by hand sends the same id, for its owner only', async () => {
    const secret = webhookSecret()
    const hooks = await receiver(secret)
    await hooks.stop()
    const store = memoryWebhookStore()
    const webhooks = await dispatcher({
      store,
      endpoints: [{ url: hooks.url, secret }],
      maxAttempts: 2,
    })
    await webhooks.publish(jobWebhookEvent(job('bob')))
    const { id } = await only(store, 'bob')
    const failed = await untilDelivery(store, id, (d) => d.state === 'failed')
    expect(failed).toMatchObject({ attempts: 2, nextAttemptAt: null })

    await expect(webhooks.redeliver(id, { owner: 'alice' })).rejects.toThrow(NotFoundError)
    await hooks.start()
    const requeued = await webhooks.redeliver(id, { owner: 'bob' })
    expect(requeued.state).toBe('pending')
    await expect(webhooks.redeliver(id, { owner: 'bob' })).rejects.toThrow(InvalidStateError)
    expect((await hooks.next()).id).toBe(id)
    expect(await untilDelivery(store, id, (d) => d.state === 'delivered')).toMatchObject({
      attempts: 3,
    })
  })

  it('sends each endpoint only the event types and owner it asked for', async () => {
    const secret = webhookSecret()
    const all = await receiver(secret)
    const assetsOfCarol = await receiver(secret)
    const store = memoryWebhookStore()
    const webhooks = await dispatcher({
      store,
      endpoints: [
        { id: 'all', url: all.url, secret },
        {
          id: 'carol-assets',
          url: assetsOfCarol.url,
          secret,
          events: ['asset.created'],
          owner: 'carol',
        },
      ],
    })
    const asset = {
      id: randomUUID(),
      owner: 'carol',
      storageKey: 'k',
      originalFilename: 'a.mp3',
      contentType: 'audio/mpeg',
      size: 10,
      sha256: 'ab'.repeat(32),
      media: { formatName: 'mp3', durationSec: 1, bitRate: null, streams: [] },
      createdAt: new Date(),
    }
    await webhooks.publish(jobWebhookEvent(job('carol')))
    await webhooks.publish(
      assetWebhookEvent('asset.created', { ...asset, owner: 'dave', id: randomUUID() }),
    )
    await webhooks.publish(assetWebhookEvent('asset.created', asset))
    const got = await assetsOfCarol.next()
    expect(got).toMatchObject({ type: 'asset.created', data: { id: asset.id, owner: 'carol' } })
    const byEndpoint = await store.list({ endpointId: 'carol-assets' })
    expect(byEndpoint.items).toHaveLength(1)
    expect((await store.list({ endpointId: 'all' })).items).toHaveLength(3)
  })

  it('refuses, at every delivery, a host that resolves to a private address unless allowed', async () => {
    const secret = webhookSecret()
    const hooks = await receiver(secret)
    const store = memoryWebhookStore()
    const port = new URL(hooks.url).port
    const webhooks = await dispatcher({
      store,
      allowPrivateAddresses: false,
      maxAttempts: 1,
      // The name looks public; its DNS answer is the receiver's loopback address.
      resolve: async () => [{ address: '127.0.0.1', family: 4 }],
      endpoints: [{ url: `http://hooks.example.com:${port}/hooks`, secret }],
    })
    await webhooks.publish(jobWebhookEvent(job()))
    const { id } = await only(store)
    const failed = await untilDelivery(store, id, (d) => d.state === 'failed')
    expect(failed.lastError).toMatch(/not a public address \(loopback\)/)
    expect(hooks.received).toEqual([])
  })
})
