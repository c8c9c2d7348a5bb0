import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import {
  createTranscoder,
  type Job,
  memoryRepository,
  type TranscodeService,
} from '@transcodekit/core'
import { jobEnd, makeTone } from '@transcodekit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type ElasticTranscoderFake,
  startElasticTranscoderFake,
} from '../../../test/fakes/elastic-transcoder-fake.ts'
import {
  type MediaConvertFake,
  startMediaConvertFake,
} from '../../../test/fakes/mediaconvert-fake.ts'
import { type S3rverHandle, startS3rver } from '../../../test/fakes/s3rver-server.ts'
import { elasticTranscoderEngine, mediaConvertEngine, s3Storage } from '../src/index.ts'
import { elasticTranscoderClient, mediaConvertClient, s3rverClient } from './aws-clients.ts'

/**
 * The service driving remote engines with no notification at all: it polls `getStatus` until
 * the job ends, and cancels through the engine while the service allows it.
 */
const BUCKET = 'tk-remote-service'
const PIPELINES = [
  { Id: '1111111111111-aaaaaa', Name: 'Other', InputBucket: BUCKET, OutputBucket: BUCKET },
  { Id: '3333333333333-cccccc', Name: 'Audio Files', InputBucket: BUCKET, OutputBucket: BUCKET },
]

let s3: S3rverHandle
let et: ElasticTranscoderFake
let etHeld: ElasticTranscoderFake
let mc: MediaConvertFake
let dir: string
let mp3: string
const clients: { destroy(): void }[] = []
const services: TranscodeService[] = []

beforeAll(async () => {
  s3 = await startS3rver({ buckets: [BUCKET] })
  et = await startElasticTranscoderFake({ s3Endpoint: s3.endpoint, pipelines: PIPELINES })
  etHeld = await startElasticTranscoderFake({
    s3Endpoint: s3.endpoint,
    pipelines: PIPELINES,
    hold: true,
  })
  mc = await startMediaConvertFake({ s3Endpoint: s3.endpoint })
  dir = await mkdtemp(join(tmpdir(), 'tk-remote-service-'))
  mp3 = await makeTone(join(dir, 'song.mp3'), { seconds: 3, format: 'mp3' })
})

afterAll(async () => {
  for (const service of services) await service.close()
  for (const client of clients) client.destroy()
  await et?.close()
  await etHeld?.close()
  await mc?.close()
  await s3?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

function etService(endpoint: string): TranscodeService {
  const s3client = s3rverClient(s3.endpoint)
  const etClient = elasticTranscoderClient(endpoint)
  clients.push(s3client, etClient)
  const service = createTranscoder({
    storage: s3Storage({ client: s3client, bucket: BUCKET, prefix: 'svc/' }),
    engine: elasticTranscoderEngine({
      client: etClient,
      pipelineName: 'Audio Files',
      objectKeyPrefix: 'svc/',
    }),
    repository: memoryRepository(),
    pollIntervalMs: 50,
  })
  services.push(service)
  return service
}

async function until(read: () => Promise<Job>, done: (job: Job) => boolean): Promise<Job> {
  const deadline = Date.now() + 30_000
  for (;;) {
    const job = await read()
    if (done(job)) return job
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('TranscodeService with remote engines, polling', () => {
  it('completes an Elastic Transcoder job by polling ReadJob and records every output', async () => {
    const service = etService(et.endpoint)
    const { job } = await service.ingestAndTranscode(createReadStream(mp3), {
      filename: 'song.mp3',
      presets: ['1351620000001-300300', '1351620000001-300110', '1351620000001-100110'],
    })
    const done = await jobEnd(service, job.id)
    expect(done.state, done.errorMessage ?? '').toBe('complete')
    expect(done.engine).toBe('elastic-transcoder')
    expect(done.engineJobId).toMatch(/^\d{13}-\w{6}$/)
    const reads = et.requests.filter(
      (r) => r.method === 'GET' && r.path === `/2012-09-25/jobs/${done.engineJobId}`,
    )
    expect(reads.length).toBeGreaterThan(0)
    for (const output of done.outputs) {
      expect(output.state).toBe('complete')
      expect(output.size).toBe((await service.storage.head(output.storageKey))?.size)
      expect(output.durationSec).toBeCloseTo(3, 0)
    }
  })

  it('records the 3002 failure of the service as the job error, per output as the service reports it', async () => {
    const service = etService(etHeld.endpoint)
    const asset = await service.ingest(createReadStream(mp3), { filename: 'song.mp3' })
    const job = await service.transcode(asset.id, { presets: ['wav', 'flac'] })
    const submitted = await until(
      () => service.getJob(job.id),
      (j) => j.engineJobId !== null,
    )
    // Something else writes where the job's first output goes before the service starts it.
    await service.storage.put(job.outputs[0]!.storageKey, Readable.from([Buffer.from('not ours')]))
    etHeld.start(submitted.engineJobId as string)
    const done = await jobEnd(service, job.id)
    expect(done.state).toBe('error')
    expect(done.errorCode).toBe('STORAGE_FAILED')
    expect(done.errorMessage).toContain('3002')
    // Elastic Transcoder fails the colliding output and still makes the other one.
    expect(done.outputs.map((o) => [o.name, o.state])).toEqual([
      ['wav', 'error'],
      ['flac', 'complete'],
    ])
    const kept = await service.storage.get(done.outputs[0]!.storageKey)
    expect(Buffer.concat(await kept.body.toArray()).toString()).toBe('not ours')
  })

  it('cancels a job still Submitted at Elastic Transcoder; a started one is refused and stays as it is', async () => {
    const service = etService(etHeld.endpoint)
    const asset = await service.ingest(createReadStream(mp3), { filename: 'song.mp3' })
    const job = await service.transcode(asset.id, { presets: ['wav'] })
    const submitted = await until(
      () => service.getJob(job.id),
      (j) => j.engineJobId !== null,
    )
    const canceled = await service.cancel(job.id)
    expect(canceled.state).toBe('canceled')
    expect(etHeld.jobs.get(submitted.engineJobId as string)?.Status).toBe('Canceled')

    const second = await service.transcode(asset.id, { presets: ['flac'] })
    const running = await until(
      () => service.getJob(second.id),
      (j) => j.engineJobId !== null,
    )
    etHeld.start(running.engineJobId as string)
    await expect(service.cancel(second.id)).rejects.toMatchObject({ code: 'INVALID_STATE' })
    expect((await service.getJob(second.id)).state).not.toBe('canceled')
    const done = await jobEnd(service, second.id)
    expect(done.state).toBe('complete')
  })

  it('completes a MediaConvert job by polling GetJob, with progress', async () => {
    const s3client = s3rverClient(s3.endpoint)
    const client = mediaConvertClient(mc.endpoint)
    clients.push(s3client, client)
    const service = createTranscoder({
      storage: s3Storage({ client: s3client, bucket: BUCKET, prefix: 'mc/' }),
      engine: mediaConvertEngine({
        client,
        role: 'arn:aws:iam::123456789012:role/MediaConvert',
        bucket: BUCKET,
        objectKeyPrefix: 'mc/',
      }),
      repository: memoryRepository(),
      pollIntervalMs: 50,
    })
    services.push(service)
    const { job } = await service.ingestAndTranscode(createReadStream(mp3), {
      presets: ['wav', 'mp3-128k'],
    })
    const done = await jobEnd(service, job.id)
    expect(done.state, done.errorMessage ?? '').toBe('complete')
    expect(done.progress).toBe(100)
    const created = [...mc.jobs.values()].find((j) => j.id === done.engineJobId)
    expect(created?.clientRequestToken).toBe(job.id)
    for (const output of done.outputs) {
      expect(output.state).toBe('complete')
      expect(output.size).toBeGreaterThan(0)
    }
  })
})
