import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type { Asset, Job, Page } from '../model.ts'
import type { NewJob, Repository } from '../ports/repository.ts'

export interface RepositoryUnderTest {
  repository: Repository
  cleanup?: () => Promise<void>
}

/**
 * The contract every `Repository` adapter passes. Only the port is used; every test makes
 * its own ids and does not assume the repository is empty, so an adapter may share one
 * database between tests.
 *
 * @example
 * repositoryConformance('memoryRepository', async () => ({ repository: memoryRepository() }))
 */
export function repositoryConformance(
  name: string,
  make: () => Promise<RepositoryUnderTest>,
): void {
  describe(`Repository conformance: ${name}`, () => {
    async function withRepository(test: (repository: Repository) => Promise<void>) {
      const { repository, cleanup } = await make()
      try {
        await test(repository)
      } finally {
        await cleanup?.()
      }
    }

    it('stores an asset and gives it back whole, with Dates', () =>
      withRepository(async (repository) => {
        const asset = makeAsset({ createdAt: new Date('2024-03-01T12:34:56.789Z') })
        await repository.createAsset(asset)
        const got = await repository.getAsset(asset.id)
        expect(got).toEqual(asset)
        expect(got?.createdAt).toBeInstanceOf(Date)
        expect(got?.createdAt.toISOString()).toBe('2024-03-01T12:34:56.789Z')
        expect(await repository.getAsset(randomUUID())).toBeNull()
      }))

    it('refuses an asset id that exists, and gives assets created at once their own answers', () =>
      withRepository(async (repository) => {
        const first = makeAsset()
        await repository.createAsset(first)
        await expect(repository.createAsset(makeAsset({ id: first.id }))).rejects.toMatchObject({
          code: 'INVALID_STATE',
        })
        // A burst with one duplicate among them (an adapter may insert them in one statement).
        const burst = Array.from({ length: 9 }, (_, i) =>
          i === 4 ? makeAsset({ id: first.id, size: 1 }) : makeAsset(),
        )
        const outcomes = await Promise.allSettled(burst.map((a) => repository.createAsset(a)))
        expect(outcomes.map((o) => o.status)).toEqual(
          burst.map((_, i) => (i === 4 ? 'rejected' : 'fulfilled')),
        )
        for (const [i, asset] of burst.entries()) {
          expect(await repository.getAsset(asset.id)).toEqual(i === 4 ? first : asset)
        }
      }))

    it('stores an asset not probed yet with media null, and records its probe once', () =>
      withRepository(async (repository) => {
        const probed = makeAsset()
        const asset = makeAsset({ media: null, contentType: 'application/octet-stream' })
        await repository.createAsset(asset)
        expect(await repository.getAsset(asset.id)).toEqual(asset)

        const first = { media: probed.media!, contentType: 'audio/mpeg' }
        const recorded = await repository.setAssetMedia(asset.id, first)
        expect(recorded).toEqual({ ...asset, ...first })
        expect(await repository.getAsset(asset.id)).toEqual({ ...asset, ...first })

        // A job delivered again probes again: the first answer stays.
        const second = {
          media: { ...probed.media!, formatName: 'wav', durationSec: 99 },
          contentType: 'audio/wav',
        }
        expect(await repository.setAssetMedia(asset.id, second)).toEqual({ ...asset, ...first })
        expect(await repository.getAsset(asset.id)).toEqual({ ...asset, ...first })
        expect(await repository.setAssetMedia(randomUUID(), first)).toBeNull()
      }))

    it('keeps its own copy of what goes in and comes out', () =>
      withRepository(async (repository) => {
        const asset = makeAsset()
        await repository.createAsset(asset)
        const expected = structuredClone(asset)
        asset.size = 1
        asset.media!.streams[0]!.codec = 'changed'
        const got = (await repository.getAsset(asset.id))!
        expect(got).toEqual(expected)
        got.media!.streams.length = 0
        expect(await repository.getAsset(asset.id)).toEqual(expected)

        const { job } = await repository.createJob(makeJob(asset.id))
        job.outputs[0]!.state = 'complete'
        job.state = 'error'
        const stored = (await repository.getJob(job.id))!
        expect(stored.state).toBe('submitted')
        expect(stored.outputs[0]!.state).toBe('submitted')
        stored.outputs[0]!.state = 'complete'
        stored.progress = 50
        const listed = (await repository.listJobs({ assetId: asset.id })).items[0]!
        listed.outputs[0]!.size = 7
        const byKey = await repository.getJob(job.id)
        expect(byKey?.progress).toBe(0)
        expect(byKey?.outputs[0]).toMatchObject({ state: 'submitted', size: null })
        const assets = await repository.listAssets({ limit: 100 })
        for (const item of assets.items) item.createdAt.setTime(0)
        expect((await repository.getAsset(asset.id))?.createdAt.getTime()).not.toBe(0)
      }))

    it('lists assets newest first in pages, ties broken by id, without gaps or duplicates', () =>
      withRepository(async (repository) => {
        const base = Date.parse('2031-01-01T00:00:00.000Z') + Math.floor(Math.random() * 1e9)
        const mine: Asset[] = []
        for (let i = 0; i < 25; i++) {
          // Groups of three share a creation time, to exercise the tie-break.
          mine.push(makeAsset({ createdAt: new Date(base + Math.floor(i / 3) * 1000) }))
        }
        for (const asset of shuffled(mine)) await repository.createAsset(asset)

        const pages = await walk((cursor) => repository.listAssets({ limit: 10, cursor }))
        for (const page of pages.slice(0, -1)) expect(page.items).toHaveLength(10)
        expect(pages.at(-1)!.items.length).toBeLessThanOrEqual(10)
        expect(pages.at(-1)!.nextCursor).toBeNull()
        const all = pages.flatMap((page) => page.items)
        expect(new Set(all.map((a) => a.id)).size).toBe(all.length)
        expectNewestFirst(all)

        const expected = [...mine].sort(newestFirst).map((a) => a.id)
        const mineSeen = all.filter((a) => mine.some((m) => m.id === a.id)).map((a) => a.id)
        expect(mineSeen).toEqual(expected)
        const firstOfMine = all.find((a) => a.id === expected[0])
        expect(firstOfMine).toEqual(mine.find((a) => a.id === expected[0]))
      }))

    it('clamps the page size and refuses a malformed cursor with INVALID_CURSOR', () =>
      withRepository(async (repository) => {
        for (let i = 0; i < 3; i++) await repository.createAsset(makeAsset())
        expect((await repository.listAssets({ limit: 2 })).items).toHaveLength(2)
        expect((await repository.listAssets({ limit: 0 })).items).toHaveLength(1)
        const page = await repository.listAssets({ limit: 1 })
        expect(page.nextCursor).toEqual(expect.any(String))

        for (const cursor of [
          'not-a-cursor',
          'e30',
          Buffer.from('["yesterday","x"]').toString('base64url'),
        ]) {
          await expect(repository.listAssets({ cursor })).rejects.toMatchObject({
            name: 'InvalidRequestError',
            code: 'INVALID_CURSOR',
          })
          await expect(repository.listJobs({ cursor })).rejects.toMatchObject({
            code: 'INVALID_CURSOR',
          })
        }
      }))

    it('gives jobs created at once their own answers: made, found by key, or refused', () =>
      withRepository(async (repository) => {
        const asset = await createAsset(repository)
        const taken = await repository.createJob(makeJob(asset.id))
        const sharedKey = `key-${randomUUID()}`
        // A burst (an adapter may write it in one statement) with rows the database refuses.
        const burst = [
          makeJob(asset.id, { idempotencyKey: `key-${randomUUID()}` }),
          makeJob(asset.id, { idempotencyKey: sharedKey, requestHash: 'shared' }),
          makeJob(randomUUID()),
          makeJob(asset.id, { idempotencyKey: sharedKey, requestHash: 'shared' }),
          makeJob(asset.id, { id: taken.job.id }),
          makeJob(asset.id),
        ]
        const outcomes = await Promise.allSettled(burst.map((job) => repository.createJob(job)))
        expect(outcomes.map((o) => o.status)).toEqual([
          'fulfilled',
          'fulfilled',
          'rejected',
          'fulfilled',
          'rejected',
          'fulfilled',
        ])
        const value = (i: number) =>
          (outcomes[i] as PromiseFulfilledResult<Awaited<ReturnType<Repository['createJob']>>>)
            .value
        const reason = (i: number) => (outcomes[i] as PromiseRejectedResult).reason
        expect(reason(2)).toMatchObject({ code: 'NOT_FOUND' })
        expect(reason(4)).toMatchObject({ code: 'INVALID_STATE' })
        expect(value(0)).toMatchObject({ created: true, job: { id: burst[0]!.id } })
        expect(value(5)).toMatchObject({ created: true, job: { id: burst[5]!.id } })
        // One key, one job: the other of the pair finds it, whole.
        expect([value(1).created, value(3).created].sort()).toEqual([false, true])
        expect(value(3).job).toEqual(value(1).job)
        expect(value(1).job.outputs).toHaveLength(burst[1]!.outputs.length)
        expect(value(3).requestHash).toBe('shared')
        expect(await repository.getJob(burst[2]!.id)).toBeNull()
        expect((await repository.getJob(taken.job.id))?.assetId).toBe(asset.id)
        for (const i of [0, 5]) expect(await repository.getJob(burst[i]!.id)).toEqual(value(i).job)
      }))

    it('creates a job submitted, at 0 %, with its outputs', () =>
      withRepository(async (repository) => {
        const asset = await createAsset(repository)
        const input = makeJob(asset.id, { idempotencyKey: `key-${randomUUID()}` })
        const { job, created, requestHash } = await repository.createJob(input)
        expect(created).toBe(true)
        expect(requestHash).toBe(input.requestHash)
        expect(job).toEqual({
          id: input.id,
          owner: OWNER,
          assetId: asset.id,
          engine: input.engine,
          engineJobId: null,
          state: 'submitted',
          progress: 0,
          errorCode: null,
          errorMessage: null,
          idempotencyKey: input.idempotencyKey,
          attempts: 0,
          outputs: input.outputs.map((o) => ({
            ...o,
            jobId: input.id,
            state: 'submitted',
            size: null,
            durationSec: null,
            errorCode: null,
            errorMessage: null,
          })),
          createdAt: input.createdAt,
          updatedAt: expect.any(Date),
          finishedAt: null,
        })
        expect(await repository.getJob(job.id)).toEqual(job)
        expect(await repository.getJobByIdempotencyKey(input.idempotencyKey!, OWNER)).toEqual(job)
        expect(await repository.getJobByIdempotencyKey(`key-${randomUUID()}`, OWNER)).toBeNull()
        expect(await repository.getJob(randomUUID())).toBeNull()
      }))

    it('keeps the preset name each output was asked for by, beside its id', () =>
      withRepository(async (repository) => {
        const asset = await createAsset(repository)
        const input = makeJob(asset.id)
        input.outputs = input.outputs.map((o, i) =>
          i === 0 ? { ...o, requestedPresetId: '1351620000001-300300' } : o,
        )
        const { job } = await repository.createJob(input)
        const read = await repository.getJob(job.id)
        for (const seen of [
          job,
          read,
          (await repository.listJobs({ assetId: asset.id })).items[0],
        ]) {
          expect(seen?.outputs[0]?.requestedPresetId).toBe('1351620000001-300300')
          expect(seen?.outputs[1]).not.toHaveProperty('requestedPresetId')
        }
      }))

    it('refuses a job for an asset that does not exist, storing nothing', () =>
      withRepository(async (repository) => {
        const input = makeJob(randomUUID(), { idempotencyKey: `key-${randomUUID()}` })
        await expect(repository.createJob(input)).rejects.toThrow()
        expect(await repository.getJob(input.id)).toBeNull()
        expect(await repository.getJobByIdempotencyKey(input.idempotencyKey!, OWNER)).toBeNull()
      }))

    it('gives the same job for the same idempotency key, with the stored request hash', () =>
      withRepository(async (repository) => {
        const asset = await createAsset(repository)
        const key = `key-${randomUUID()}`
        const first = await repository.createJob(
          makeJob(asset.id, { idempotencyKey: key, requestHash: 'hash-1' }),
        )
        const again = makeJob(asset.id, { idempotencyKey: key, requestHash: 'hash-2' })
        const second = await repository.createJob(again)
        expect(second.created).toBe(false)
        expect(second.job).toEqual(first.job)
        expect(second.requestHash).toBe('hash-1')
        expect(await repository.getJob(again.id)).toBeNull()

        // Without a key, every call is a new job.
        const a = await repository.createJob(makeJob(asset.id, { idempotencyKey: null }))
        const b = await repository.createJob(makeJob(asset.id, { idempotencyKey: null }))
        expect(a.created && b.created).toBe(true)
        expect(a.job.id).not.toBe(b.job.id)
      }))

    it('makes exactly one job out of 10 concurrent creates with one key', () =>
      withRepository(async (repository) => {
        const asset = await createAsset(repository)
        const key = `key-${randomUUID()}`
        const inputs = Array.from({ length: 10 }, (_, i) =>
          makeJob(asset.id, { idempotencyKey: key, requestHash: `hash-${i}` }),
        )
        const results = await Promise.all(inputs.map((input) => repository.createJob(input)))
        expect(results.filter((r) => r.created)).toHaveLength(1)
        const winner = results.find((r) => r.created)!
        expect(new Set(results.map((r) => r.job.id))).toEqual(new Set([winner.job.id]))
        expect(new Set(results.map((r) => r.requestHash))).toEqual(new Set([winner.requestHash]))
        const jobs = await collect((cursor) => repository.listJobs({ assetId: asset.id, cursor }))
        expect(jobs.map((j) => j.id)).toEqual([winner.job.id])
      }))

    it('finds a job by its engine job id, per engine', () =>
      withRepository(async (repository) => {
        const asset = await createAsset(repository)
        const { job } = await repository.createJob(makeJob(asset.id, { engine: 'engine-a' }))
        const engineJobId = `remote-${randomUUID()}`
        const updated = await repository.updateJob(job.id, { engineJobId })
        expect(updated?.engineJobId).toBe(engineJobId)
        expect((await repository.getJobByEngineJobId('engine-a', engineJobId))?.id).toBe(job.id)
        expect(await repository.getJobByEngineJobId('engine-b', engineJobId)).toBeNull()
        expect(
          await repository.getJobByEngineJobId('engine-a', `remote-${randomUUID()}`),
        ).toBeNull()
      }))

    it('applies patches, never lowers progress, and bumps updatedAt', () =>
      withRepository(async (repository) => {
        const asset = await createAsset(repository)
        const { job } = await repository.createJob(
          makeJob(asset.id, { createdAt: new Date(Date.now() - 60_000) }),
        )
        const started = (await repository.updateJob(job.id, {
          state: 'progressing',
          progress: 12.5,
          incrementAttempts: true,
        }))!
        expect(started.state).toBe('progressing')
        expect(started.progress).toBe(12.5)
        expect(started.attempts).toBe(1)
        expect(started.updatedAt.getTime()).toBeGreaterThan(job.updatedAt.getTime())
        expect(started.createdAt).toEqual(job.createdAt)
        expect(started.finishedAt).toBeNull()

        const lower = (await repository.updateJob(job.id, { progress: 3 }))!
        expect(lower.progress).toBe(12.5)
        const higher = (await repository.updateJob(job.id, {
          progress: 60,
          incrementAttempts: true,
        }))!
        expect(higher.progress).toBe(60)
        expect(higher.attempts).toBe(2)
        expect(higher.updatedAt.getTime()).toBeGreaterThanOrEqual(started.updatedAt.getTime())
        expect(await repository.getJob(job.id)).toEqual(higher)

        expect(await repository.updateJob(randomUUID(), { progress: 1 })).toBeNull()
      }))

    it('never changes a job once it is terminal, and sets finishedAt', () =>
      withRepository(async (repository) => {
        const asset = await createAsset(repository)
        for (const terminal of ['complete', 'error', 'canceled'] as const) {
          const { job } = await repository.createJob(makeJob(asset.id))
          await repository.updateJob(job.id, { state: 'progressing', progress: 40 })
          const ended = (await repository.updateJob(job.id, {
            state: terminal,
            progress: terminal === 'complete' ? 100 : undefined,
            errorCode: terminal === 'error' ? 'DECODE_FAILED' : undefined,
            errorMessage: terminal === 'error' ? 'could not decode' : undefined,
          }))!
          expect(ended.state).toBe(terminal)
          expect(ended.finishedAt).toBeInstanceOf(Date)
          expect(ended.finishedAt!.getTime()).toBeGreaterThanOrEqual(ended.createdAt.getTime())
          if (terminal === 'error') {
            expect(ended).toMatchObject({
              errorCode: 'DECODE_FAILED',
              errorMessage: 'could not decode',
            })
          }

          for (const state of [
            'submitted',
            'progressing',
            'complete',
            'error',
            'canceled',
          ] as const) {
            const after = await repository.updateJob(job.id, {
              state,
              progress: 100,
              engineJobId: 'late',
              errorCode: 'LATE',
              errorMessage: 'late',
              incrementAttempts: true,
              outputs: ended.outputs.map((o) => ({ name: o.name, state, size: 5 })),
            })
            expect(after).toEqual(ended)
          }
          expect(await repository.getJob(job.id)).toEqual(ended)
        }
      }))

    it('never moves an output out of a terminal state', () =>
      withRepository(async (repository) => {
        const asset = await createAsset(repository)
        const { job } = await repository.createJob(makeJob(asset.id))
        const [first, second] = job.outputs.map((o) => o.name) as [string, string]
        await repository.updateJob(job.id, { state: 'progressing' })
        const one = (await repository.updateJob(job.id, {
          outputs: [
            { name: first, state: 'complete', size: 1234, durationSec: 10.05 },
            { name: second, state: 'progressing' },
          ],
        }))!
        expect(one.outputs.find((o) => o.name === first)).toMatchObject({
          state: 'complete',
          size: 1234,
          durationSec: 10.05,
        })
        const two = (await repository.updateJob(job.id, {
          outputs: [
            { name: first, state: 'error' },
            { name: second, state: 'complete', size: 99 },
            { name: 'not-an-output', state: 'complete' },
          ],
        }))!
        expect(two.outputs.find((o) => o.name === first)?.state).toBe('complete')
        expect(two.outputs.find((o) => o.name === first)?.size).toBe(1234)
        expect(two.outputs.find((o) => o.name === second)).toMatchObject({
          state: 'complete',
          size: 99,
        })
        expect(two.outputs).toHaveLength(2)
        expect(two.state).toBe('progressing')
        expect(await repository.getJob(job.id)).toEqual(two)
      }))

    it("records an output's own error while its job completes", () =>
      withRepository(async (repository) => {
        const asset = await createAsset(repository)
        const { job } = await repository.createJob(makeJob(asset.id))
        const [first, second] = job.outputs.map((o) => o.name) as [string, string]
        const ended = (await repository.updateJob(job.id, {
          state: 'complete',
          progress: 100,
          outputs: [
            { name: first, state: 'complete', size: 10, durationSec: 1 },
            { name: second, state: 'error', errorCode: 'NO_FRAME', errorMessage: 'no frame' },
          ],
        }))!
        expect(ended.state).toBe('complete')
        expect(ended.errorCode).toBeNull()
        expect(ended.outputs.find((o) => o.name === first)).toMatchObject({
          state: 'complete',
          errorCode: null,
          errorMessage: null,
        })
        expect(ended.outputs.find((o) => o.name === second)).toMatchObject({
          state: 'error',
          errorCode: 'NO_FRAME',
          errorMessage: 'no frame',
        })
        expect(await repository.getJob(job.id)).toEqual(ended)
      }))

    it('lists jobs newest first, filtered by asset and by state', () =>
      withRepository(async (repository) => {
        const assetA = await createAsset(repository)
        const assetB = await createAsset(repository)
        const base = Date.now() - 3_600_000
        const jobsA: Job[] = []
        for (let i = 0; i < 5; i++) {
          // Two pairs share a creation time.
          const createdAt = new Date(base + Math.floor(i / 2) * 1000)
          jobsA.push((await repository.createJob(makeJob(assetA.id, { createdAt }))).job)
        }
        const jobB = (await repository.createJob(makeJob(assetB.id))).job
        await repository.updateJob(jobsA[1]!.id, { state: 'complete', progress: 100 })
        await repository.updateJob(jobsA[3]!.id, { state: 'complete', progress: 100 })
        await repository.updateJob(jobB.id, { state: 'complete', progress: 100 })

        const pages = await walk((cursor) =>
          repository.listJobs({ assetId: assetA.id, limit: 2, cursor }),
        )
        expect(pages.map((p) => p.items.length)).toEqual([2, 2, 1])
        const listed = pages.flatMap((p) => p.items)
        expect(listed.map((j) => j.id)).toEqual([...jobsA].sort(newestFirst).map((j) => j.id))
        expect(listed.every((j) => j.assetId === assetA.id)).toBe(true)

        const complete = await collect((cursor) =>
          repository.listJobs({ assetId: assetA.id, state: 'complete', cursor }),
        )
        expect(complete.map((j) => j.id).sort()).toEqual([jobsA[1]!.id, jobsA[3]!.id].sort())

        const submitted = await collect((cursor) =>
          repository.listJobs({ assetId: assetA.id, state: 'submitted', cursor }),
        )
        expect(submitted).toHaveLength(3)
        // A page that ends exactly at the end of the listing says so.
        const exact = await repository.listJobs({
          assetId: assetA.id,
          state: 'submitted',
          limit: 3,
        })
        expect(exact.items).toHaveLength(3)
        expect(exact.nextCursor).toBeNull()

        const allComplete = await collect((cursor) =>
          repository.listJobs({ state: 'complete', limit: 50, cursor }),
        )
        expect(allComplete.every((j) => j.state === 'complete')).toBe(true)
        expectNewestFirst(allComplete)
        for (const id of [jobsA[1]!.id, jobsA[3]!.id, jobB.id]) {
          expect(allComplete.some((j) => j.id === id)).toBe(true)
        }
      }))

    it('keeps an idempotency key per owner: the same key of another owner is another job', () =>
      withRepository(async (repository) => {
        const [ownerA, ownerB] = [`a-${randomUUID()}`, `b-${randomUUID()}`]
        const assetA = await createAsset(repository, { owner: ownerA })
        const assetB = await createAsset(repository, { owner: ownerB })
        const key = `key-${randomUUID()}`
        const a = await repository.createJob(
          makeJob(assetA.id, { owner: ownerA, idempotencyKey: key, requestHash: 'hash-a' }),
        )
        const b = await repository.createJob(
          makeJob(assetB.id, { owner: ownerB, idempotencyKey: key, requestHash: 'hash-b' }),
        )
        expect(a.created && b.created).toBe(true)
        expect(b.job.id).not.toBe(a.job.id)
        expect(b.job).toMatchObject({ owner: ownerB, assetId: assetB.id, idempotencyKey: key })
        expect(b.requestHash).toBe('hash-b')
        expect((await repository.getJobByIdempotencyKey(key, ownerA))?.id).toBe(a.job.id)
        expect((await repository.getJobByIdempotencyKey(key, ownerB))?.id).toBe(b.job.id)
        expect(await repository.getJobByIdempotencyKey(key, `c-${randomUUID()}`)).toBeNull()

        // Many lookups at once (a CMS burst; an adapter may answer them in one statement):
        // each gets its own owner's job, or null.
        const asked = [
          [key, ownerA, a.job.id],
          [key, ownerB, b.job.id],
          [key, `c-${randomUUID()}`, null],
          [`key-${randomUUID()}`, ownerA, null],
        ] as const
        const answers = await Promise.all(
          Array.from({ length: 40 }, (_, i) => {
            const [k, owner] = asked[i % asked.length]!
            return repository.getJobByIdempotencyKey(k, owner)
          }),
        )
        expect(answers.map((job) => job?.id ?? null)).toEqual(
          Array.from({ length: 40 }, (_, i) => asked[i % asked.length]![2]),
        )
        expect(answers[1]).toEqual(b.job)

        // Concurrent creates of two owners with one key: one job each, never the other's.
        const raceKey = `key-${randomUUID()}`
        const inputs = Array.from({ length: 10 }, (_, i) =>
          i % 2
            ? makeJob(assetA.id, { owner: ownerA, idempotencyKey: raceKey })
            : makeJob(assetB.id, { owner: ownerB, idempotencyKey: raceKey }),
        )
        const results = await Promise.all(inputs.map((input) => repository.createJob(input)))
        expect(results.filter((r) => r.created)).toHaveLength(2)
        for (const [i, result] of results.entries()) {
          expect(result.job.owner).toBe(inputs[i]!.owner)
          expect(result.job.assetId).toBe(inputs[i]!.assetId)
        }
        expect(new Set(results.map((r) => r.job.id)).size).toBe(2)
      }))

    it('refuses a job whose owner is not the owner of its asset, storing nothing', () =>
      withRepository(async (repository) => {
        const asset = await createAsset(repository, { owner: `a-${randomUUID()}` })
        const input = makeJob(asset.id, {
          owner: `b-${randomUUID()}`,
          idempotencyKey: `key-${randomUUID()}`,
        })
        await expect(repository.createJob(input)).rejects.toMatchObject({ code: 'NOT_FOUND' })
        expect(await repository.getJob(input.id)).toBeNull()
        expect(
          await repository.getJobByIdempotencyKey(input.idempotencyKey!, input.owner),
        ).toBeNull()
      }))

    it('lists the assets and jobs of one owner, newest first, across pages', () =>
      withRepository(async (repository) => {
        const [ownerA, ownerB] = [`a-${randomUUID()}`, `b-${randomUUID()}`]
        const base = Date.parse('2031-05-01T00:00:00Z')
        const mine: Asset[] = []
        const jobsA: Job[] = []
        for (let i = 0; i < 5; i++) {
          const createdAt = new Date(base + i * 1000)
          const a = await createAsset(repository, { owner: ownerA, createdAt })
          mine.push(a)
          jobsA.push((await repository.createJob(makeJob(a.id, { owner: ownerA, createdAt }))).job)
          const b = await createAsset(repository, { owner: ownerB, createdAt })
          await repository.createJob(makeJob(b.id, { owner: ownerB, createdAt }))
        }
        await repository.updateJob(jobsA[2]!.id, { state: 'complete' })

        const assets = await collect((cursor) =>
          repository.listAssets({ owner: ownerA, limit: 2, cursor }),
        )
        expect(assets.map((a) => a.id)).toEqual(mine.map((a) => a.id).reverse())
        expect(assets.every((a) => a.owner === ownerA)).toBe(true)

        const jobs = await collect((cursor) =>
          repository.listJobs({ owner: ownerA, limit: 2, cursor }),
        )
        expect(jobs.map((j) => j.id)).toEqual(jobsA.map((j) => j.id).reverse())
        expect(jobs.every((j) => j.owner === ownerA)).toBe(true)

        const submitted = await collect((cursor) =>
          repository.listJobs({ owner: ownerA, state: 'submitted', limit: 2, cursor }),
        )
        expect(submitted.map((j) => j.id)).toEqual(
          jobsA
            .filter((_, i) => i !== 2)
            .map((j) => j.id)
            .reverse(),
        )
        const ofAsset = await repository.listJobs({ owner: ownerB, assetId: mine[0]!.id })
        expect(ofAsset.items).toEqual([])
        expect((await repository.listAssets({ owner: `c-${randomUUID()}` })).items).toEqual([])
      }))

    it('deletes an asset with its jobs', () =>
      withRepository(async (repository) => {
        const doomed = await createAsset(repository)
        const kept = await createAsset(repository)
        const key = `key-${randomUUID()}`
        const engineJobId = `remote-${randomUUID()}`
        const { job } = await repository.createJob(makeJob(doomed.id, { idempotencyKey: key }))
        await repository.updateJob(job.id, { engineJobId })
        const other = (await repository.createJob(makeJob(doomed.id))).job
        const survivor = (await repository.createJob(makeJob(kept.id))).job

        expect(await repository.deleteAsset(doomed.id)).toBe(true)
        expect(await repository.getAsset(doomed.id)).toBeNull()
        expect(await repository.getJob(job.id)).toBeNull()
        expect(await repository.getJob(other.id)).toBeNull()
        expect(await repository.getJobByIdempotencyKey(key, OWNER)).toBeNull()
        expect(await repository.getJobByEngineJobId(job.engine, engineJobId)).toBeNull()
        expect((await repository.listJobs({ assetId: doomed.id })).items).toEqual([])
        expect(await repository.deleteAsset(doomed.id)).toBe(false)
        expect(await repository.deleteAsset(randomUUID())).toBe(false)

        expect(await repository.getAsset(kept.id)).not.toBeNull()
        expect(await repository.getJob(survivor.id)).toEqual(survivor)
      }))
  })
}

/** The owner of what the tests make, unless they say otherwise. */
const OWNER = 'owner-a'

/** A probed audio asset with fresh ids; `overrides` replace fields. */
function makeAsset(overrides: Partial<Asset> = {}): Asset {
  const id = randomUUID()
  return {
    id,
    owner: OWNER,
    storageKey: `originals/${id}/original.mp3`,
    originalFilename: 'Song (final).mp3',
    contentType: 'audio/mpeg',
    size: 160_123,
    sha256: 'a'.repeat(64),
    media: {
      formatName: 'mp3',
      durationSec: 10.032,
      bitRate: 128_000,
      streams: [
        {
          index: 0,
          type: 'audio',
          codec: 'mp3',
          durationSec: 10.032,
          bitRate: 128_000,
          sampleRate: 44_100,
          channels: 2,
        },
      ],
    },
    createdAt: new Date(),
    ...overrides,
  }
}

/** A new job with two outputs and fresh ids; `overrides` replace fields. */
function makeJob(assetId: string, overrides: Partial<NewJob> = {}): NewJob {
  const id = overrides.id ?? randomUUID()
  return {
    id,
    owner: OWNER,
    assetId,
    engine: 'ffmpeg',
    idempotencyKey: null,
    requestHash: `hash-${randomUUID()}`,
    outputs: [
      {
        name: '1351620000001-300300',
        presetId: '1351620000001-300300',
        storageKey: `outputs/${assetId}/${id}/1351620000001-300300.wav`,
        contentType: 'audio/wav',
      },
      {
        name: '1351620000001-300110',
        presetId: '1351620000001-300110',
        storageKey: `outputs/${assetId}/${id}/1351620000001-300110.flac`,
        contentType: 'audio/flac',
      },
    ],
    createdAt: new Date(),
    ...overrides,
  }
}

async function createAsset(repository: Repository, overrides: Partial<Asset> = {}): Promise<Asset> {
  const asset = makeAsset(overrides)
  await repository.createAsset(asset)
  return asset
}

/** Every page of a listing, following cursors (bounded, so a cursor loop fails the test). */
async function walk<T>(list: (cursor: string | null) => Promise<Page<T>>): Promise<Page<T>[]> {
  const pages: Page<T>[] = []
  let cursor: string | null = null
  do {
    const page: Page<T> = await list(cursor)
    pages.push(page)
    cursor = page.nextCursor
    if (pages.length > 10_000) throw new Error('the listing does not end')
  } while (cursor)
  return pages
}

async function collect<T>(list: (cursor: string | null) => Promise<Page<T>>): Promise<T[]> {
  return (await walk(list)).flatMap((page) => page.items)
}

function newestFirst(
  a: { id: string; createdAt: Date },
  b: { id: string; createdAt: Date },
): number {
  const byTime = b.createdAt.getTime() - a.createdAt.getTime()
  if (byTime !== 0) return byTime
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0
}

function expectNewestFirst(items: Array<{ id: string; createdAt: Date }>): void {
  for (let i = 1; i < items.length; i++) {
    expect(
      newestFirst(items[i - 1]!, items[i]!),
      `items ${i - 1} and ${i} are out of order`,
    ).toBeLessThan(0)
  }
}

function shuffled<T>(items: T[]): T[] {
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[copy[i], copy[j]] = [copy[j]!, copy[i]!]
  }
  return copy
}
