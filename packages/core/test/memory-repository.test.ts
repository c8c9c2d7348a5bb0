import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type { Job } from '../src/model.ts'
import type { Outbox } from '../src/ports/repository.ts'
import type { WebhookDelivery } from '../src/ports/webhooks.ts'
import { memoryRepository } from '../src/repository/memory-repository.ts'
import { repositoryConformance } from '../src/testing/repository-suite.ts'

repositoryConformance('memoryRepository', async () => ({ repository: memoryRepository() }))

// The suite above also runs against one repository shared by every test, as a database
// shared between test files would be: nothing in it may assume an empty store.
const shared = memoryRepository()
repositoryConformance('memoryRepository (shared)', async () => ({ repository: shared }))

describe('memoryRepository', () => {
  it('keeps repositories apart', async () => {
    const a = memoryRepository()
    const b = memoryRepository()
    const id = randomUUID()
    await a.createAsset({
      id,
      storageKey: `originals/${id}/original.wav`,
      originalFilename: null,
      contentType: 'audio/wav',
      size: 1,
      sha256: '0'.repeat(64),
      media: { formatName: 'wav', durationSec: 1, bitRate: null, streams: [] },
      createdAt: new Date(),
    })
    expect(await a.getAsset(id)).not.toBeNull()
    expect(await b.getAsset(id)).toBeNull()
    expect((await b.listAssets()).items).toEqual([])
  })

  it('records the deliveries of an outbox in its webhook store with the job, or neither', async () => {
    const repository = memoryRepository()
    const assetId = randomUUID()
    await repository.createAsset({
      id: assetId,
      owner: 'alice',
      storageKey: `originals/${assetId}/original.wav`,
      originalFilename: null,
      contentType: 'audio/wav',
      size: 1,
      sha256: '0'.repeat(64),
      media: { formatName: 'wav', durationSec: 1, bitRate: null, streams: [] },
      createdAt: new Date(),
    })
    const { job } = await repository.createJob({
      id: randomUUID(),
      owner: 'alice',
      assetId,
      engine: 'ffmpeg',
      idempotencyKey: null,
      requestHash: 'hash',
      outputs: [],
      createdAt: new Date(),
    })
    const recorded: WebhookDelivery[] = []
    const outbox = (fail: boolean): Outbox<Job> => ({
      deliveriesFor: (written) => {
        if (fail) throw new Error('no delivery')
        return [
          {
            id: `msg_${randomUUID()}`,
            owner: written.owner,
            endpointId: 'main',
            eventType: `job.${written.state}` as const,
            eventKey: `job.${written.state}:${written.id}`,
            payload: JSON.stringify({ state: written.state }),
            createdAt: new Date(),
          },
        ]
      },
      recorded: (deliveries) => void recorded.push(...deliveries),
    })
    await expect(
      repository.updateJob(job.id, { state: 'complete' }, { outbox: outbox(true) }),
    ).rejects.toThrow('no delivery')
    expect(await repository.getJob(job.id)).toMatchObject({ state: 'submitted' })

    await repository.updateJob(job.id, { state: 'progressing' }, { outbox: outbox(false) })
    const stored = (await repository.webhookStore().list()).items
    expect(stored.map((d) => [d.eventKey, d.payload])).toEqual([
      [`job.progressing:${job.id}`, '{"state":"progressing"}'],
    ])
    expect(recorded.map((d) => d.id)).toEqual(stored.map((d) => d.id))
  })
})
