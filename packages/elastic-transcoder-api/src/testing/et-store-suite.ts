import { randomBytes, randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { newEtId } from '../et-ids.ts'
import type { EtJobRecord, EtPipelineRecord, EtStore } from '../store/et-store.ts'

export interface EtStoreUnderTest {
  store: EtStore
  cleanup?: () => Promise<void>
}

function owner(): string {
  return `owner-${randomBytes(4).toString('hex')}`
}

/** Ids that sort in the order they are made, even within one millisecond. */
function ids(count: number): string[] {
  const base = Date.now()
  return Array.from({ length: count }, (_, i) => newEtId(base + i))
}

function pipeline(id: string, of: string, name = 'Audio Files'): EtPipelineRecord {
  return {
    id,
    owner: of,
    name,
    status: 'Active',
    inputBucket: 'in',
    outputBucket: 'out',
    role: 'arn:aws:iam::123456789012:role/Transcoder',
    awsKmsKeyArn: null,
    notifications: {
      Progressing: '',
      Completed: 'https://example.test/et',
      Warning: '',
      Error: '',
    },
    createdAt: new Date(Math.floor(Date.now() / 1000) * 1000),
  }
}

function job(
  id: string,
  of: string,
  pipelineId: string,
  status: EtJobRecord['status'] = 'Submitted',
): EtJobRecord {
  return {
    id,
    owner: of,
    pipelineId,
    coreJobId: randomUUID(),
    input: { Key: 'media/song.mp3', Container: 'auto' },
    outputKeyPrefix: 'out/',
    outputs: [
      {
        id: '1',
        key: 'song.wav',
        presetId: '1351620000001-300300',
        corePresetId: 'wav',
        segmentDuration: null,
        status,
        statusDetail: null,
        durationSec: null,
        durationMillis: null,
        width: null,
        height: null,
        fileSize: null,
      },
    ],
    playlists: [],
    userMetadata: { app: 'seed' },
    status,
    submittedAt: new Date(Math.floor(Date.now() / 1000) * 1000),
    startedAt: null,
    finishedAt: null,
  }
}

/**
 * The contract every `EtStore` passes. Every test makes its own owner and ids, so a store
 * may share one database between tests.
 *
 * @example
 * etStoreConformance('memoryEtStore', async () => ({ store: memoryEtStore() }))
 */
export function etStoreConformance(name: string, make: () => Promise<EtStoreUnderTest>): void {
  describe(`EtStore conformance: ${name}`, () => {
    async function withStore(test: (store: EtStore) => Promise<void>) {
      const { store, cleanup } = await make()
      try {
        await test(store)
      } finally {
        await cleanup?.()
      }
    }

    it('keeps pipelines per owner, pages them both ways, updates and deletes them', () =>
      withStore(async (store) => {
        const alice = owner()
        const made = ids(5)
        for (const id of made) await store.createPipeline(pipeline(id, alice))
        await store.createPipeline(pipeline(ids(1)[0] as string, owner()))
        expect(await store.getPipeline(made[0] as string, alice)).toEqual(
          pipeline(made[0] as string, alice),
        )
        expect(await store.getPipeline(made[0] as string, 'someone-else')).toBeNull()

        const seen: string[] = []
        let after: string | null = null
        do {
          const page = await store.listPipelines({ owner: alice, ascending: true, after, limit: 2 })
          expect(page.items.length).toBeLessThanOrEqual(2)
          seen.push(...page.items.map((p) => p.id))
          after = page.next
        } while (after)
        expect(seen).toEqual(made)
        const newest = await store.listPipelines({
          owner: alice,
          ascending: false,
          after: null,
          limit: 10,
        })
        expect(newest.items.map((p) => p.id)).toEqual([...made].reverse())
        expect(newest.next).toBeNull()

        const updated = await store.updatePipeline(made[1] as string, alice, {
          status: 'Paused',
          name: 'Video',
        })
        expect(updated).toMatchObject({ status: 'Paused', name: 'Video', inputBucket: 'in' })
        expect(
          await store.updatePipeline(made[1] as string, 'someone-else', { name: 'x' }),
        ).toBeNull()
        expect(await store.deletePipeline(made[1] as string, 'someone-else')).toBe('missing')
        expect(await store.deletePipeline(made[1] as string, alice)).toBe('deleted')
        expect(await store.getPipeline(made[1] as string, alice)).toBeNull()
      }))

    it('refuses to delete a pipeline with an unfinished job', () =>
      withStore(async (store) => {
        const alice = owner()
        const [pipelineId, jobId] = ids(2) as [string, string]
        await store.createPipeline(pipeline(pipelineId, alice))
        await store.createJob(job(jobId, alice, pipelineId))
        expect(await store.deletePipeline(pipelineId, alice)).toBe('in-use')
        await store.updateJob(jobId, { status: 'Complete' })
        expect(await store.deletePipeline(pipelineId, alice)).toBe('deleted')
      }))

    it('keeps jobs per owner and lists them by pipeline and by status, in pages', () =>
      withStore(async (store) => {
        const alice = owner()
        const [p1, p2, ...jobIds] = ids(7) as string[]
        await store.createPipeline(pipeline(p1 as string, alice))
        await store.createPipeline(pipeline(p2 as string, alice))
        const records = jobIds.map((id, i) =>
          job(id, alice, i < 4 ? (p1 as string) : (p2 as string)),
        )
        for (const record of records) await store.createJob(record)
        const first = records[0] as EtJobRecord
        expect(await store.getJob(first.id, alice)).toEqual(first)
        expect(await store.getJob(first.id, 'someone-else')).toBeNull()
        expect(await store.getJobById(first.id)).toEqual(first)

        const byPipeline: string[] = []
        let after: string | null = null
        do {
          const page = await store.listJobs({
            owner: alice,
            pipelineId: p1,
            ascending: false,
            after,
            limit: 3,
          })
          byPipeline.push(...page.items.map((j) => j.id))
          after = page.next
        } while (after)
        expect(byPipeline).toEqual(jobIds.slice(0, 4).reverse())

        await store.updateJob(jobIds[1] as string, { status: 'Progressing' })
        const submitted = await store.listJobs({
          owner: alice,
          status: 'Submitted',
          ascending: true,
          after: null,
          limit: 10,
        })
        expect(submitted.items.map((j) => j.id)).toEqual(jobIds.filter((_, i) => i !== 1))
        expect(
          (await store.listJobs({ owner: owner(), ascending: true, after: null, limit: 10 })).items,
        ).toEqual([])
      }))

    it('never changes an ended job, and applies onlyIf atomically', () =>
      withStore(async (store) => {
        const alice = owner()
        const [pipelineId, jobId] = ids(2) as [string, string]
        await store.createPipeline(pipeline(pipelineId, alice))
        await store.createJob(job(jobId, alice, pipelineId))
        const results = await Promise.all([
          store.updateJob(jobId, { status: 'Canceled' }, { onlyIf: ['Submitted'] }),
          store.updateJob(jobId, { status: 'Progressing' }, { onlyIf: ['Submitted'] }),
        ])
        expect(results.filter((r) => r !== null)).toHaveLength(1)
        const finishedAt = new Date(Math.floor(Date.now() / 1000) * 1000)
        const done = await store.updateJob(jobId, { status: 'Error', finishedAt })
        const status = (await store.getJobById(jobId))?.status
        expect(status === 'Canceled' || done?.finishedAt?.getTime() === finishedAt.getTime()).toBe(
          true,
        )
        expect(await store.updateJob(jobId, { status: 'Complete' })).toBeNull()
        expect((await store.getJobById(jobId))?.status).toBe(status)
      }))

    it('lists the unfinished jobs of every owner, oldest first', () =>
      withStore(async (store) => {
        const [pipelineId, a, b, c] = ids(4) as [string, string, string, string]
        const alice = owner()
        await store.createPipeline(pipeline(pipelineId, alice))
        await store.createJob(job(a, alice, pipelineId))
        await store.createJob(job(b, owner(), pipelineId, 'Progressing'))
        await store.createJob(job(c, alice, pipelineId))
        await store.updateJob(c, { status: 'Complete' })
        const unfinished = (await store.listUnfinishedJobs(1000)).map((j) => j.id)
        expect(unfinished.filter((id) => [a, b, c].includes(id))).toEqual([a, b])
        expect(await store.listUnfinishedJobs(1)).toHaveLength(1)
      }))

    it('lets exactly one caller claim the delivery of a job', () =>
      withStore(async (store) => {
        const alice = owner()
        const [pipelineId, jobId] = ids(2) as [string, string]
        await store.createPipeline(pipeline(pipelineId, alice))
        await store.createJob(job(jobId, alice, pipelineId))
        const claims = await Promise.all(
          Array.from({ length: 5 }, () => store.claimDelivery(jobId)),
        )
        expect(claims.filter(Boolean)).toHaveLength(1)
        expect(await store.claimDelivery(jobId)).toBe(false)
      }))
  })
}
