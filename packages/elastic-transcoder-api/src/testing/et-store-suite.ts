import { randomBytes, randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { newEtId } from '../et-ids.ts'
import type { EtJobRecord, EtPipelineRecord, EtPresetRecord, EtStore } from '../store/et-store.ts'

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

function customPreset(id: string, of: string): EtPresetRecord {
  return {
    id,
    owner: of,
    name: 'Voice mono',
    settings: { Container: 'mp3', Audio: { Codec: 'mp3', Channels: '1' } },
    preset: {
      id: `et-${id}`,
      description: 'Voice mono',
      container: 'mp3',
      extension: 'mp3',
      contentType: 'audio/mpeg',
      audio: { codec: 'mp3', bitrate: 64_000, channels: 1 },
      elasticTranscoderPresetId: id,
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

    it('creates at most maxPerOwner pipelines of an owner, even when asked at once', () =>
      withStore(async (store) => {
        const [alice, bob] = [owner(), owner()]
        const made = ids(7)
        const results = await Promise.all(
          made
            .slice(0, 5)
            .map((id) => store.createPipeline(pipeline(id, alice), { maxPerOwner: 2 })),
        )
        expect(results.filter((r) => r === 'created')).toHaveLength(2)
        expect(results.filter((r) => r === 'limit')).toHaveLength(3)
        const page = await store.listPipelines({
          owner: alice,
          ascending: true,
          after: null,
          limit: 50,
        })
        expect(page.items).toHaveLength(2)
        // Another owner's count is its own.
        expect(
          await store.createPipeline(pipeline(made[5] as string, bob), { maxPerOwner: 2 }),
        ).toBe('created')
        expect(await store.createPipeline(pipeline(made[6] as string, bob))).toBe('created')
      }))

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

    it("keeps a paused pipeline's held jobs without a core job, and records it only while Submitted", () =>
      withStore(async (store) => {
        const alice = owner()
        const [pipelineId, started, canceled] = ids(3) as [string, string, string]
        await store.createPipeline(pipeline(pipelineId, alice))
        expect((await store.updatePipeline(pipelineId, alice, { status: 'Paused' }))?.status).toBe(
          'Paused',
        )
        expect((await store.getPipeline(pipelineId, alice))?.status).toBe('Paused')
        for (const id of [started, canceled]) {
          await store.createJob({ ...job(id, alice, pipelineId), coreJobId: null })
        }
        expect((await store.getJob(started, alice))?.coreJobId).toBeNull()
        const held = (await store.listUnfinishedJobs(1000)).filter(
          (j) => j.pipelineId === pipelineId,
        )
        expect(held.map((j) => [j.id, j.coreJobId])).toEqual([
          [started, null],
          [canceled, null],
        ])
        const core = randomUUID()
        const recorded = await store.updateJob(
          started,
          { coreJobId: core },
          { onlyIf: ['Submitted'] },
        )
        expect(recorded).toMatchObject({ coreJobId: core, status: 'Submitted' })
        await store.updateJob(canceled, { status: 'Canceled' }, { onlyIf: ['Submitted'] })
        expect(
          await store.updateJob(canceled, { coreJobId: randomUUID() }, { onlyIf: ['Submitted'] }),
        ).toBeNull()
        expect((await store.getJobById(canceled))?.coreJobId).toBeNull()
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
        // Paged after an id: a sweep reaches every unfinished job, not only the oldest ones.
        const afterA = (await store.listUnfinishedJobs(1000, a)).map((j) => j.id)
        expect(afterA).toContain(b)
        expect(afterA).not.toContain(a)
      }))

    it('lets exactly one caller claim the delivery of a job', () =>
      withStore(async (store) => {
        const alice = owner()
        const [pipelineId, jobId] = ids(2) as [string, string]
        await store.createPipeline(pipeline(pipelineId, alice))
        await store.createJob(job(jobId, alice, pipelineId))
        const claims = await Promise.all(
          Array.from({ length: 5 }, () => store.claimDelivery(jobId, 600_000)),
        )
        expect(claims.filter(Boolean)).toHaveLength(1)
        expect(await store.claimDelivery(jobId, 600_000)).toBe(false)
      }))

    it('gives the delivery to another caller once the claim holder lease has lapsed', () =>
      withStore(async (store) => {
        const alice = owner()
        const [pipelineId, jobId] = ids(2) as [string, string]
        await store.createPipeline(pipeline(pipelineId, alice))
        await store.createJob(job(jobId, alice, pipelineId))
        // A process claimed it, then died while copying: its claim never ends by itself.
        expect(await store.claimDelivery(jobId, 600_000)).toBe(true)
        // A caller for whom any claim older than 0 ms has lapsed takes it over…
        expect(await store.claimDelivery(jobId, 0)).toBe(true)
        // …and holds it for the next 10 minutes against everyone else.
        expect(await store.claimDelivery(jobId, 600_000)).toBe(false)
      }))

    it('keeps custom presets per owner: read, list and delete only by their owner', () =>
      withStore(async (store) => {
        const [alice, bob] = [owner(), owner()]
        const [a1, a2, b1] = ids(3) as [string, string, string]
        expect(await store.createPreset(customPreset(a1, alice))).toBe('created')
        await store.createPreset(customPreset(a2, alice))
        await store.createPreset(customPreset(b1, bob))
        expect(await store.getPreset(a1, alice)).toEqual(customPreset(a1, alice))
        expect(await store.getPreset(a1, bob)).toBeNull()
        expect((await store.listPresets(alice)).map((p) => p.id)).toEqual([a1, a2])
        expect((await store.listPresets(bob)).map((p) => p.id)).toEqual([b1])
        expect(await store.deletePreset(a1, bob)).toBe(false)
        expect(await store.getPreset(a1, alice)).not.toBeNull()
        expect(await store.deletePreset(a1, alice)).toBe(true)
        expect(await store.deletePreset(a1, alice)).toBe(false)
        expect(await store.getPreset(a1, alice)).toBeNull()
      }))

    it('caps custom presets per owner, even for concurrent creates', () =>
      withStore(async (store) => {
        const [alice, bob] = [owner(), owner()]
        const results = await Promise.all(
          ids(6).map((id) => store.createPreset(customPreset(id, alice), { maxPerOwner: 4 })),
        )
        expect(results.filter((r) => r === 'created')).toHaveLength(4)
        expect(await store.listPresets(alice)).toHaveLength(4)
        // Another owner's room is their own.
        const [b1] = ids(1) as [string]
        expect(await store.createPreset(customPreset(b1, bob), { maxPerOwner: 4 })).toBe('created')
      }))
  })
}
