import { randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import {
  createPresetCatalog,
  type EngineJobRequest,
  type MediaInfo,
  originalKey,
  outputKey,
  type Preset,
  probeMedia,
} from '@transcodekit/core'
import { engineConformance, makeTone } from '@transcodekit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type ElasticTranscoderFake,
  startElasticTranscoderFake,
} from '../../../test/fakes/elastic-transcoder-fake.ts'
import { type S3rverHandle, startS3rver } from '../../../test/fakes/s3rver-server.ts'
import { elasticTranscoderEngine, type S3Storage, s3Storage } from '../src/index.ts'
import { elasticTranscoderClient, s3rverClient } from './aws-clients.ts'

const BUCKET = 'tk-et-engine'
const PIPELINES = [
  { Id: '1111111111111-aaaaaa', Name: 'Video Files', InputBucket: BUCKET, OutputBucket: BUCKET },
  { Id: '2222222222222-bbbbbb', Name: 'Audio', InputBucket: BUCKET, OutputBucket: BUCKET },
  { Id: '3333333333333-cccccc', Name: 'Audio Files', InputBucket: BUCKET, OutputBucket: BUCKET },
  { Id: '4444444444444-dddddd', Name: 'Twin', InputBucket: BUCKET, OutputBucket: BUCKET },
  { Id: '5555555555555-eeeeee', Name: 'Twin', InputBucket: BUCKET, OutputBucket: BUCKET },
]
const catalog = createPresetCatalog()

let s3: S3rverHandle
let et: ElasticTranscoderFake
let held: ElasticTranscoderFake
let dir: string
let storage: S3Storage
let inputKey: string
let media: MediaInfo
const clients: { destroy(): void }[] = []

beforeAll(async () => {
  s3 = await startS3rver({ buckets: [BUCKET] })
  et = await startElasticTranscoderFake({ s3Endpoint: s3.endpoint, pipelines: PIPELINES })
  held = await startElasticTranscoderFake({
    s3Endpoint: s3.endpoint,
    pipelines: PIPELINES,
    hold: true,
  })
  const client = s3rverClient(s3.endpoint)
  clients.push(client)
  storage = s3Storage({ client, bucket: BUCKET, prefix: 'app/' })
  dir = await mkdtemp(join(tmpdir(), 'tk-et-engine-'))
  const mp3 = await makeTone(join(dir, 'tone.mp3'), { seconds: 3, format: 'mp3' })
  media = await probeMedia(mp3)
  inputKey = originalKey('', randomUUID(), 'mp3')
  await storage.put(inputKey, createReadStream(mp3), { contentType: 'audio/mpeg' })
})

afterAll(async () => {
  for (const client of clients) client.destroy()
  await et?.close()
  await held?.close()
  await s3?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

function client(endpoint: string) {
  const made = elasticTranscoderClient(endpoint)
  clients.push(made)
  return made
}

function request(presets: Preset[]): EngineJobRequest {
  const assetId = randomUUID()
  const jobId = randomUUID()
  return {
    jobId,
    input: { key: inputKey, media },
    storage,
    outputs: presets.map((preset) => ({
      name: preset.id,
      key: outputKey('', assetId, jobId, preset.id, preset.extension),
      preset,
    })),
  }
}

const run = { signal: new AbortController().signal, onStatus: () => {} }

describe('elasticTranscoderEngine', () => {
  it('finds the pipeline by name on a later page, once, and caches it', async () => {
    const engine = elasticTranscoderEngine({
      client: client(et.endpoint),
      pipelineName: 'Audio Files',
      objectKeyPrefix: 'app/',
    })
    const from = et.requests.length
    expect(await engine.pipelineId()).toBe('3333333333333-cccccc')
    expect(await engine.pipelineId()).toBe('3333333333333-cccccc')
    const listed = et.requests.slice(from).filter((r) => r.path === '/2012-09-25/pipelines')
    // Every page is read (to catch a name used twice), and only once.
    expect(listed.map((r) => r.query.get('PageToken'))).toHaveLength(PIPELINES.length)
    expect(listed[0]?.query.get('PageToken')).toBeNull()
  })

  it('fails clearly when no pipeline or several pipelines have the name', async () => {
    const none = elasticTranscoderEngine({ client: client(et.endpoint), pipelineName: 'Nope' })
    await expect(none.pipelineId()).rejects.toMatchObject({
      code: 'CONFIGURATION',
      message: expect.stringContaining('"Nope"'),
    })
    const twins = elasticTranscoderEngine({ client: client(et.endpoint), pipelineName: 'Twin' })
    await expect(twins.pipelineId()).rejects.toMatchObject({
      code: 'CONFIGURATION',
      message: expect.stringContaining('4444444444444-dddddd, 5555555555555-eeeeee'),
    })
    expect(() => elasticTranscoderEngine({ client: client(et.endpoint) })).toThrow(/exactly one/)
  })

  it('runs the seed job: one CreateJob, outputs under the job prefix, read back as full storage keys', async () => {
    const engine = elasticTranscoderEngine({
      client: client(et.endpoint),
      pipelineName: 'Audio Files',
      objectKeyPrefix: 'app/',
    })
    const presets = catalog.resolveAll([
      '1351620000001-300300',
      '1351620000001-300110',
      '1351620000001-100110',
    ])
    const req = request(presets)
    const from = et.requests.length
    const submitted = await engine.run(req, run)
    expect(submitted.state).toBe('submitted')
    const creates = et.requests.slice(from).filter((r) => r.method === 'POST')
    expect(creates).toHaveLength(1)
    const jobPrefix = req.outputs[0]!.key.replace(/[^/]+$/, '')
    expect(creates[0]?.body).toMatchObject({
      PipelineId: '3333333333333-cccccc',
      Input: { Key: `app/${inputKey}` },
      OutputKeyPrefix: `app/${jobPrefix}`,
      Outputs: [
        { Key: 'wav.wav', PresetId: '1351620000001-300300' },
        { Key: 'flac.flac', PresetId: '1351620000001-300110' },
        { Key: 'aac-256k.m4a', PresetId: '1351620000001-100110' },
      ],
    })
    await et.settled(submitted.engineJobId)
    const status = await engine.getStatus(submitted.engineJobId)
    expect(status.state).toBe('complete')
    expect(status.outputs?.map((o) => o.key)).toEqual(req.outputs.map((o) => o.key))
    for (const output of status.outputs ?? []) {
      expect(output.state).toBe('complete')
      const head = await storage.head(output.key)
      expect(head?.size).toBe(output.size)
      expect(output.durationSec).toBeCloseTo(3, 0)
    }
  })

  it('does not submit a job twice for the same job id (a retried submission finds the first)', async () => {
    const engine = elasticTranscoderEngine({
      client: client(held.endpoint),
      pipelineName: 'Audio Files',
      objectKeyPrefix: 'app/',
    })
    const req = request([catalog.resolve('wav')])
    const first = await engine.run(req, run)
    // Another process, after a crash lost the first answer.
    const again = await elasticTranscoderEngine({
      client: client(held.endpoint),
      pipelineName: 'Audio Files',
      objectKeyPrefix: 'app/',
    }).run(req, run)
    expect(again.engineJobId).toBe(first.engineJobId)
    const mine = [...held.jobs.values()].filter(
      (job) => job.UserMetadata?.transcodekitJobId === req.jobId,
    )
    expect(mine).toHaveLength(1)
    const other = await engine.run(request([catalog.resolve('wav')]), run)
    expect(other.engineJobId).not.toBe(first.engineJobId)
    await engine.cancel(first.engineJobId)
    await engine.cancel(other.engineJobId)
  })

  it('says which presets it cannot run', () => {
    const engine = elasticTranscoderEngine({
      client: client(et.endpoint),
      pipelineId: '3333333333333-cccccc',
    })
    expect(engine.unsupportedReason(catalog.resolve('wav'))).toBeNull()
    expect(engine.unsupportedReason(catalog.resolve('thumbnail'))).toMatch(
      /no Elastic Transcoder preset id/,
    )
    expect(engine.unsupportedReason(catalog.resolve('waveform'))).toMatch(
      /no Elastic Transcoder preset id/,
    )
  })

  it('maps a preset id the service does not know to ENGINE_REJECTED, from its ValidationException', async () => {
    const engine = elasticTranscoderEngine({
      client: client(et.endpoint),
      pipelineId: '3333333333333-cccccc',
      objectKeyPrefix: 'app/',
    })
    const custom: Preset = {
      ...catalog.resolve('wav'),
      id: 'custom-wav',
      aliases: [],
      elasticTranscoderPresetId: '9999999999999-zzzzzz',
    }
    const before = et.jobs.size
    await expect(engine.run(request([custom]), run)).rejects.toMatchObject({
      code: 'ENGINE_REJECTED',
      message: expect.stringContaining('ValidationException'),
    })
    const wrongPipeline = elasticTranscoderEngine({
      client: client(et.endpoint),
      pipelineId: '9999999999999-ffffff',
      objectKeyPrefix: 'app/',
    })
    await expect(wrongPipeline.run(request([catalog.resolve('wav')]), run)).rejects.toMatchObject({
      code: 'ENGINE_REJECTED',
      message: expect.stringContaining('pipeline was not found'),
    })
    expect(et.jobs.size).toBe(before)
  })

  it('maps a throttled submission (429) to ENGINE_UNAVAILABLE, to be tried again', async () => {
    // The fake does not throttle: an endpoint that answers every request as AWS does when it
    // throttles (429, x-amzn-ErrorType, a JSON message).
    const throttling = createServer((req, res) => {
      req.resume()
      res.writeHead(429, {
        'content-type': 'application/json',
        'x-amzn-errortype': 'ThrottlingException',
      })
      res.end(JSON.stringify({ message: 'Rate exceeded' }))
    })
    await new Promise<void>((resolve) => throttling.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = throttling.address() as AddressInfo
      const engine = elasticTranscoderEngine({
        client: client(`http://127.0.0.1:${port}`),
        pipelineId: '3333333333333-cccccc',
        objectKeyPrefix: 'app/',
        lookbackPages: 0,
      })
      await expect(engine.run(request([catalog.resolve('wav')]), run)).rejects.toMatchObject({
        code: 'ENGINE_UNAVAILABLE',
        message: expect.stringContaining('ThrottlingException'),
      })
    } finally {
      await new Promise((resolve) => throttling.close(resolve))
    }
  })

  it('refuses a storage whose prefix the engine was not told', async () => {
    const engine = elasticTranscoderEngine({
      client: client(et.endpoint),
      pipelineId: '3333333333333-cccccc',
    })
    await expect(engine.run(request([catalog.resolve('wav')]), run)).rejects.toMatchObject({
      code: 'CONFIGURATION',
    })
  })

  it('fails an output whose key already exists with error 3002, as the service does', async () => {
    const engine = elasticTranscoderEngine({
      client: client(et.endpoint),
      pipelineName: 'Audio Files',
      objectKeyPrefix: 'app/',
    })
    const req = request(catalog.resolveAll(['wav', 'flac']))
    await storage.put(req.outputs[0]!.key, Readable.from([Buffer.from('already here')]))
    const submitted = await engine.run(req, run)
    await et.settled(submitted.engineJobId)
    const status = await engine.getStatus(submitted.engineJobId)
    expect(status.state).toBe('error')
    expect(status.error?.code).toBe('STORAGE_FAILED')
    expect(status.error?.message).toContain('3002')
    expect(status.outputs?.find((o) => o.key === req.outputs[0]!.key)?.state).toBe('error')
    // The existing object was not overwritten.
    const kept = await storage.get(req.outputs[0]!.key)
    expect(Buffer.concat(await kept.body.toArray()).toString()).toBe('already here')
  })

  it('cancels a Submitted job; a started job cannot be canceled', async () => {
    const engine = elasticTranscoderEngine({
      client: client(held.endpoint),
      pipelineName: 'Audio Files',
      objectKeyPrefix: 'app/',
    })
    const first = await engine.run(request([catalog.resolve('wav')]), run)
    expect(first.state).toBe('submitted')
    await engine.cancel(first.engineJobId)
    expect((await engine.getStatus(first.engineJobId)).state).toBe('canceled')
    expect(held.jobs.get(first.engineJobId)?.Status).toBe('Canceled')

    const second = await engine.run(request([catalog.resolve('wav')]), run)
    held.start(second.engineJobId)
    await expect(engine.cancel(second.engineJobId)).rejects.toMatchObject({ code: 'INVALID_STATE' })
    await held.settled(second.engineJobId)
    expect((await engine.getStatus(second.engineJobId)).state).toBe('complete')
    await expect(engine.getStatus('0000000000000-000000')).rejects.toMatchObject({
      code: 'NOT_FOUND',
    })
  })

  it('parses Elastic Transcoder notifications in both spellings, and ignores other messages', () => {
    const engine = elasticTranscoderEngine({
      client: client(et.endpoint),
      pipelineId: '3333333333333-cccccc',
      objectKeyPrefix: 'app/',
    })
    const message = (state: string, status: string) => ({
      state,
      version: '2012-09-25',
      jobId: '1700000000000-abcdef',
      pipelineId: '3333333333333-cccccc',
      outputKeyPrefix: 'app/a1/j1/',
      outputs: [{ id: '1', presetId: '1351620000001-300300', key: 'wav.wav', status, duration: 3 }],
    })
    for (const [state, status] of [
      ['COMPLETED', 'Complete'],
      ['Complete', 'COMPLETED'],
    ] as const) {
      expect(engine.parseNotification(message(state, status))).toEqual({
        engineJobId: '1700000000000-abcdef',
        state: 'complete',
        outputs: [{ key: 'a1/j1/wav.wav', state: 'complete', size: null, durationSec: 3 }],
      })
    }
    expect(
      engine.parseNotification(JSON.stringify(message('PROGRESSING', 'Progressing')))?.state,
    ).toBe('progressing')
    expect(engine.parseNotification(message('WARNING', 'Progressing'))?.state).toBe('progressing')
    const error = engine.parseNotification({
      ...message('ERROR', 'Error'),
      errorCode: 3002,
      outputs: [{ key: 'wav.wav', status: 'Error', statusDetail: '3002 exists' }],
    })
    expect(error).toMatchObject({ state: 'error', error: { code: 'STORAGE_FAILED' } })
    expect(engine.parseNotification({ detail: { status: 'COMPLETE' } })).toBeNull()
    expect(engine.parseNotification('not json')).toBeNull()
    expect(engine.parseNotification({ state: 'COMPLETED' })).toBeNull()
  })
})

describe('engine conformance', () => {
  let queued: ElasticTranscoderFake
  beforeAll(async () => {
    // Jobs wait in the queue until first polled: cancel, which the service allows only while
    // Submitted, has its window, and nothing depends on timing.
    queued = await startElasticTranscoderFake({
      s3Endpoint: s3.endpoint,
      pipelines: PIPELINES,
      hold: 'until-read',
    })
  })
  afterAll(() => queued?.close())

  engineConformance(
    'elastic-transcoder (wire fake over s3rver)',
    async () => {
      const s3client = s3rverClient(s3.endpoint)
      const etClient = elasticTranscoderClient(queued.endpoint)
      return {
        engine: elasticTranscoderEngine({
          client: etClient,
          pipelineName: 'Audio Files',
          objectKeyPrefix: 'suite/',
        }),
        storage: s3Storage({ client: s3client, bucket: BUCKET, prefix: 'suite/' }),
        cleanup: async () => {
          s3client.destroy()
          etClient.destroy()
        },
      }
    },
    { reportsProgress: false, corruptInputCode: 'DECODE_FAILED', pollIntervalMs: 50 },
  )
})
