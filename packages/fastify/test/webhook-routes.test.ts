import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { WebhookDelivery } from '@transcodekit/core'
import {
  makeTone,
  startWebhookReceiver,
  type WebhookReceiver,
  webhookSecret,
} from '@transcodekit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeApp, type TestApp } from './helpers.ts'

const secret = webhookSecret()
let fixtures: string
let tone: string
let receiver: WebhookReceiver
let t: TestApp

/** Reads a delivery until it passes `test`: the store has no change events. */
async function until(id: string, test: (d: WebhookDelivery) => boolean): Promise<WebhookDelivery> {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
    const delivery = await t.service.webhooks!.store.get(id)
    if (delivery && test(delivery)) return delivery
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`delivery ${id} did not reach the expected state`)
}

beforeAll(async () => {
  fixtures = await mkdtemp(join(tmpdir(), 'tk-webhook-routes-'))
  tone = await makeTone(join(fixtures, 'tone.mp3'), { seconds: 1, format: 'mp3' })
  receiver = await startWebhookReceiver(secret)
  t = await makeApp({
    worker: false,
    owner: (request) => (request.headers['x-owner'] as string | undefined) ?? null,
    // `viewer` may list but not redeliver; `auditor` may not even list.
    authorize: ({ owner, action }) =>
      !(owner === 'viewer' && action === 'redeliver') &&
      !(owner === 'auditor' && action === 'listDeliveries'),
    webhooks: {
      endpoints: [{ url: receiver.url, secret, events: ['asset.created'] }],
      allowPrivateAddresses: true,
      retryDelayMs: 20,
      retryDelayMaxMs: 100,
      maxAttempts: 1000,
    },
  })
})
afterAll(async () => {
  await t.close()
  await receiver.stop()
  await rm(fixtures, { recursive: true, force: true })
})

async function assetOf(owner: string) {
  const asset = await t.service.ingest(createReadStream(tone), { owner })
  const webhook = await receiver.next((w) => w.data.id === asset.id)
  await until(webhook.id, (d) => d.state === 'delivered')
  return { asset, deliveryId: webhook.id }
}

describe('webhook delivery routes', () => {
  it('lists only the caller’s deliveries, with attempts and status, a page at a time', async () => {
    const first = await assetOf('alice')
    const second = await assetOf('alice')
    await assetOf('bob')
    const page = await t.app.inject({
      url: '/webhooks/deliveries?limit=1',
      headers: { 'x-owner': 'alice' },
    })
    expect(page.statusCode).toBe(200)
    expect(page.json().items).toEqual([
      expect.objectContaining({
        id: second.deliveryId,
        endpointId: expect.stringMatching(/^ep_/),
        eventType: 'asset.created',
        state: 'delivered',
        attempts: 1,
        lastStatus: 204,
        lastError: null,
        nextAttemptAt: null,
      }),
    ])
    expect(page.json().items[0]).not.toHaveProperty('owner')
    const next = await t.app.inject({
      url: `/webhooks/deliveries?limit=1&cursor=${page.json().nextCursor}`,
      headers: { 'x-owner': 'alice' },
    })
    expect(next.json().items.map((d: { id: string }) => d.id)).toEqual([first.deliveryId])
    const none = await t.app.inject({
      url: '/webhooks/deliveries',
      headers: { 'x-owner': 'carol' },
    })
    expect(none.json()).toEqual({ items: [], nextCursor: null })
  })

  it('answers another owner’s delivery 404, on read and on redeliver', async () => {
    const { deliveryId } = await assetOf('alice')
    for (const request of [
      { method: 'GET' as const, url: `/webhooks/deliveries/${deliveryId}` },
      { method: 'POST' as const, url: `/webhooks/deliveries/${deliveryId}/redeliver` },
    ]) {
      const answer = await t.app.inject({ ...request, headers: { 'x-owner': 'bob' } })
      expect(answer.statusCode).toBe(404)
      expect(answer.json().code).toBe('TRANSCODEKIT_NOT_FOUND')
    }
    const mine = await t.app.inject({
      url: `/webhooks/deliveries/${deliveryId}`,
      headers: { 'x-owner': 'alice' },
    })
    expect(mine.json()).toMatchObject({ id: deliveryId, state: 'delivered' })
    expect(JSON.parse(mine.json().payload)).toMatchObject({ type: 'asset.created' })
  })

  it('redelivers by hand with the same webhook id; a delivery still waiting answers 409', async () => {
    const { deliveryId } = await assetOf('dave')
    await receiver.stop()
    const redeliver = () =>
      t.app.inject({
        method: 'POST',
        url: `/webhooks/deliveries/${deliveryId}/redeliver`,
        headers: { 'x-owner': 'dave' },
      })
    const accepted = await redeliver()
    expect(accepted.statusCode).toBe(202)
    expect(accepted.json()).toMatchObject({ id: deliveryId, state: 'pending' })
    // The receiver is down: the delivery stays pending, retried, and cannot be asked again.
    await until(deliveryId, (d) => d.attempts >= 2)
    const again = await redeliver()
    expect(again.statusCode).toBe(409)
    expect(again.json().code).toBe('TRANSCODEKIT_INVALID_STATE')
    await receiver.start()
    await until(deliveryId, (d) => d.state === 'delivered')
    expect(receiver.received.filter((w) => w.id === deliveryId)).toHaveLength(2)
  })

  it('asks authorize: listDeliveries, read and redeliver; refuses bad ids and anonymous callers', async () => {
    const { deliveryId } = await assetOf('viewer')
    const refused = await t.app.inject({
      method: 'POST',
      url: `/webhooks/deliveries/${deliveryId}/redeliver`,
      headers: { 'x-owner': 'viewer' },
    })
    expect(refused.statusCode).toBe(403)
    expect(refused.json().code).toBe('TRANSCODEKIT_FORBIDDEN')
    const listing = await t.app.inject({
      url: '/webhooks/deliveries',
      headers: { 'x-owner': 'auditor' },
    })
    expect(listing.statusCode).toBe(403)
    const anonymous = await t.app.inject({ url: '/webhooks/deliveries' })
    expect(anonymous.statusCode).toBe(401)
    const malformed = await t.app.inject({
      url: '/webhooks/deliveries/msg_nothex',
      headers: { 'x-owner': 'viewer' },
    })
    expect(malformed.statusCode).toBe(400)
    const badState = await t.app.inject({
      url: '/webhooks/deliveries?state=lost',
      headers: { 'x-owner': 'viewer' },
    })
    expect(badState.statusCode).toBe(400)
  })

  it('documents the routes in the OpenAPI document', async () => {
    const document = t.app.swagger() as {
      paths: Record<string, Record<string, { operationId: string }>>
    }
    expect(document.paths['/webhooks/deliveries']?.get?.operationId).toBe('listWebhookDeliveries')
    expect(document.paths['/webhooks/deliveries/{id}/redeliver']?.post?.operationId).toBe(
      'redeliverWebhook',
    )
  })
})
