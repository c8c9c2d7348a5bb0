import { createReadStream, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createTranscoder,
  ffmpegEngine,
  InvalidRequestError,
  inProcessQueue,
  type JobLimits,
  localStorage,
  memoryRepository,
  type ProbeOptions,
  probeMedia,
  type Storage,
  type TranscodeService,
} from '../src/index.ts'
import { filesUnder, jobEnd, makeTone } from '../src/testing/index.ts'

let dir: string
let probes: string[]
/** The permission bits of each file the probe read. */
let probedModes: number[]
let service: TranscodeService

/** The real probe, with a record of the files it read. */
function countedProbe(path: string, options?: ProbeOptions) {
  probes.push(path)
  probedModes.push(statSync(path).mode & 0o777)
  return probeMedia(path, options)
}

/** Local storage without its `localPath`: an original is read back as an object store's is. */
function remoteLike(storage: Storage): Storage {
  return {
    put: (...args) => storage.put(...args),
    get: (...args) => storage.get(...args),
    head: (...args) => storage.head(...args),
    delete: (...args) => storage.delete(...args),
    deletePrefix: (...args) => storage.deletePrefix(...args),
    url: (...args) => storage.url(...args),
  }
}

function makeService(
  options: { storage?: Storage; concurrency?: number; limits?: JobLimits } = {},
) {
  return createTranscoder({
    storage: options.storage ?? localStorage({ root: join(dir, 'files') }),
    engine: ffmpegEngine({ tmpDir: join(dir, 'engine-tmp') }),
    repository: memoryRepository(),
    queue: inProcessQueue(),
    tmpDir: join(dir, 'spool'),
    probe: countedProbe,
    pollIntervalMs: 50,
    worker: { concurrency: options.concurrency ?? 1 },
    limits: options.limits,
  })
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-deferred-'))
  probes = []
  probedModes = []
  service = makeService()
})

afterEach(async () => {
  await service.close()
  await rm(dir, { recursive: true, force: true })
})

describe("ingest with probe: 'deferred'", () => {
  it.each([
    ['its local file', false],
    ['a copy read from storage', true],
  ])('records the asset unprobed; its job probes %s, then transcodes', async (_how, remote) => {
    if (remote) {
      await service.close()
      service = makeService({ storage: remoteLike(localStorage({ root: join(dir, 'files') })) })
    }
    const tone = await makeTone(join(dir, 'tone.wav'), { seconds: 1, format: 'wav' })
    const { asset, job } = await service.ingestAndTranscode(createReadStream(tone), {
      presets: ['flac'],
      probe: 'deferred',
    })
    expect(asset.media).toBeNull()
    expect(asset.contentType).toBe('application/octet-stream')
    expect(job.state).toBe('submitted')

    const done = await jobEnd(service, job.id)
    expect(done.state).toBe('complete')
    expect(done.outputs[0]).toMatchObject({ state: 'complete' })
    expect(probes).toHaveLength(1)
    // The original, or the copy read for the probe, is the server user's alone.
    expect(probedModes).toEqual([0o600])
    const probed = await service.getAsset(asset.id)
    expect(probed.media?.formatName).toBe('wav')
    expect(probed.media?.streams.map((s) => s.type)).toEqual(['audio'])
    expect(probed.contentType).toBe('audio/wav')
    // The copy read for the probe is gone.
    expect(await filesUnder(join(dir, 'spool'))).toEqual([])
  })

  it('fails the job of bytes that pass the sniff but are not media, with UNSUPPORTED_MEDIA', async () => {
    const noise = Buffer.alloc(64 * 1024)
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919) % 251
    const { asset, job } = await service.ingestAndTranscode([noise], {
      presets: ['flac', 'mp3'],
      probe: 'deferred',
    })
    expect(asset.media).toBeNull()
    const done = await jobEnd(service, job.id)
    expect(done.state).toBe('error')
    expect(done.errorCode).toBe('UNSUPPORTED_MEDIA')
    expect(done.outputs.map((o) => o.state)).toEqual(['error', 'error'])
    expect((await service.getAsset(asset.id)).media).toBeNull()
    // Only the original is stored: no output of the job.
    expect(await filesUnder(join(dir, 'files'), { hiddenFolders: false })).toEqual([
      asset.storageKey,
    ])
  })

  it('fails the job of a preset the probed streams cannot feed, with INCOMPATIBLE_PRESET', async () => {
    const tone = await makeTone(join(dir, 'tone.wav'), { seconds: 1, format: 'wav' })
    const { job } = await service.ingestAndTranscode(createReadStream(tone), {
      presets: ['thumbnail'],
      probe: 'deferred',
    })
    const done = await jobEnd(service, job.id)
    expect(done.state).toBe('error')
    expect(done.errorCode).toBe('INCOMPATIBLE_PRESET')
    expect(done.outputs.map((o) => o.state)).toEqual(['error'])
  })

  it("fails the job of an original over the limits with the limit's code, once probed", async () => {
    await service.close()
    service = makeService({ limits: { maxDurationSec: 0.5 } })
    const tone = await makeTone(join(dir, 'tone.wav'), { seconds: 1, format: 'wav' })
    const { asset, job } = await service.ingestAndTranscode(createReadStream(tone), {
      presets: ['flac'],
      probe: 'deferred',
    })
    const done = await jobEnd(service, job.id)
    expect(done.state).toBe('error')
    expect(done.errorCode).toBe('MEDIA_TOO_LONG')
    expect(done.outputs.map((o) => o.state)).toEqual(['error'])
    expect((await service.getAsset(asset.id)).media?.durationSec).toBeCloseTo(1, 1)
  })

  it('refuses an upload that names no presets before storing anything', async () => {
    const tone = await makeTone(join(dir, 'tone.wav'), { seconds: 1, format: 'wav' })
    const error = await service
      .ingestAndTranscode(createReadStream(tone), { probe: 'deferred' })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InvalidRequestError)
    expect((error as InvalidRequestError).code).toBe('INVALID_REQUEST')
    expect((await service.listAssets()).items).toEqual([])
    expect(await filesUnder(join(dir, 'files'))).toEqual([])
    expect(await filesUnder(join(dir, 'spool'))).toEqual([])

    // An asset already recorded unprobed: no job without presets, and no job row.
    const asset = await service.ingest(createReadStream(tone), { probe: 'deferred' })
    await expect(service.transcode(asset.id)).rejects.toMatchObject({ code: 'INVALID_REQUEST' })
    expect((await service.listJobs()).items).toEqual([])
  })

  it('probes an original for its first jobs only, and a second probe racing it changes nothing', async () => {
    await service.close()
    service = makeService({ concurrency: 2 })
    const tone = await makeTone(join(dir, 'tone.wav'), { seconds: 1, format: 'wav' })
    const asset = await service.ingest(createReadStream(tone), { probe: 'deferred' })
    const first = await Promise.all([
      service.transcode(asset.id, { presets: ['flac'] }),
      service.transcode(asset.id, { presets: ['mp3'] }),
    ])
    const ends = await Promise.all(first.map((job) => jobEnd(service, job.id)))
    expect(ends.map((job) => job.state)).toEqual(['complete', 'complete'])
    // Both may have probed before either recorded its answer: the first answer stays.
    expect(probes.length).toBeGreaterThanOrEqual(1)
    expect(probes.length).toBeLessThanOrEqual(2)
    const probedBefore = probes.length
    const media = (await service.getAsset(asset.id)).media
    expect(media?.formatName).toBe('wav')

    // Now probed: a later job (defaults allowed again) reads no file.
    const later = await service.transcode(asset.id)
    expect((await jobEnd(service, later.id)).state).toBe('complete')
    expect(probes).toHaveLength(probedBefore)
    expect((await service.getAsset(asset.id)).media).toEqual(media)
  })
})
