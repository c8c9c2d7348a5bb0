import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createTranscoder,
  DEFAULT_OWNER,
  ffmpegEngine,
  localStorage,
  memoryRepository,
  type TranscodeService,
} from '../src/index.ts'
import { makeTone } from '../src/testing/index.ts'

let dir: string
let tone: string
let service: TranscodeService

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-service-owners-'))
  tone = await makeTone(join(dir, 'tone.mp3'), { seconds: 1, format: 'mp3' })
  service = createTranscoder({
    storage: localStorage({ root: join(dir, 'files') }),
    engine: ffmpegEngine({ tmpDir: join(dir, 'engine-tmp') }),
    repository: memoryRepository(),
    tmpDir: join(dir, 'spool'),
    worker: false,
  })
})
afterAll(async () => {
  await service.close()
  await rm(dir, { recursive: true, force: true })
})

describe('TranscodeService owner scopes', () => {
  it('gives assets and jobs the owner of the call, and the default owner without one', async () => {
    const mine = await service.ingest(createReadStream(tone), { owner: 'alice' })
    const job = await service.transcode(mine.id, { owner: 'alice', presets: ['wav'] })
    expect(mine.owner).toBe('alice')
    expect(job.owner).toBe('alice')
    const anyone = await service.ingest(createReadStream(tone))
    expect(anyone.owner).toBe(DEFAULT_OWNER)
    // Unscoped (a worker, a CMS adapter): the job takes its asset's owner.
    expect((await service.transcode(mine.id, { presets: ['flac'] })).owner).toBe('alice')
  })

  it("answers another owner's asset and job as missing, on every call", async () => {
    const asset = await service.ingest(createReadStream(tone), { owner: 'alice' })
    const job = await service.transcode(asset.id, { owner: 'alice', presets: ['wav'] })
    const bob = { owner: 'bob' }
    const notFound = { code: 'NOT_FOUND' }
    await expect(service.getAsset(asset.id, bob)).rejects.toMatchObject(notFound)
    await expect(service.getJob(job.id, bob)).rejects.toMatchObject(notFound)
    await expect(service.transcode(asset.id, { ...bob, presets: ['wav'] })).rejects.toMatchObject(
      notFound,
    )
    await expect(service.cancel(job.id, bob)).rejects.toMatchObject(notFound)
    await expect(service.retry(job.id, bob)).rejects.toMatchObject(notFound)
    await expect(service.deleteAsset(asset.id, bob)).rejects.toMatchObject(notFound)
    await expect(service.watch(job.id, bob).next()).rejects.toMatchObject(notFound)
    expect((await service.listAssets(bob)).items).toEqual([])
    expect((await service.listJobs({ ...bob, assetId: asset.id })).items).toEqual([])
    // Still there, unchanged, for its owner.
    expect((await service.getJob(job.id, { owner: 'alice' })).state).toBe('submitted')
    expect((await service.watch(job.id, { owner: 'alice' }).next()).value?.id).toBe(job.id)
  })

  it('keeps idempotency keys per owner in ingestAndTranscode', async () => {
    const a = await service.ingestAndTranscode(createReadStream(tone), {
      owner: 'alice',
      idempotencyKey: 'upload-1',
      presets: ['wav'],
    })
    const b = await service.ingestAndTranscode(createReadStream(tone), {
      owner: 'bob',
      idempotencyKey: 'upload-1',
      presets: ['wav'],
    })
    expect(b.job.id).not.toBe(a.job.id)
    expect(b.asset.owner).toBe('bob')
    const again = await service.ingestAndTranscode(createReadStream(tone), {
      owner: 'alice',
      idempotencyKey: 'upload-1',
      presets: ['wav'],
    })
    expect(again.job.id).toBe(a.job.id)
  })
})
