import { openAsBlob } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { elasticTranscoderEngine, s3Storage, snsVerifier } from '../packages/aws/src/index.ts'
import { elasticTranscoderClient, s3rverClient } from '../packages/aws/test/aws-clients.ts'
import {
  createTranscoder,
  type Job,
  memoryRepository,
  probeMedia,
  type TranscodeService,
} from '../packages/core/src/index.ts'
import { makeTone } from '../packages/core/src/testing/index.ts'
import transcodekit from '../packages/fastify/src/index.ts'
import {
  type ElasticTranscoderFake,
  startElasticTranscoderFake,
} from './fakes/elastic-transcoder-fake.ts'
import { type S3rverHandle, startS3rver } from './fakes/s3rver-server.ts'
import { type SnsEnvelope, type SnsSigner, startSnsSigner } from './fakes/sns-signer.ts'

/**
 * The seed's whole flow, at the wire: an mp3 uploaded over HTTP lands in S3 (s3rver), the
 * pipeline is found by name on a later page of ListPipelines, one Elastic Transcoder job
 * with the three seed presets is created (the fake really transcodes with ffmpeg, from and to
 * the bucket), and the job completes through a signed SNS notification posted to the
 * Fastify plugin's route. Forged or stale notifications are refused and change nothing.
 */
const BUCKET = 'tk-seed-flow'
const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:audio-transcodes'
const SEED_PRESETS = ['1351620000001-300300', '1351620000001-300110', '1351620000001-100110']

const fastifyRequire = createRequire(new URL('../packages/fastify/package.json', import.meta.url))

let dir: string
let s3: S3rverHandle
let sns: SnsSigner
let et: ElasticTranscoderFake
let service: TranscodeService
let app: {
  listen(o: object): Promise<string>
  close(): Promise<void>
  server: Server
  register(...a: unknown[]): unknown
}
let base: string
let plainHttp: Server
let plainHttpHits = 0
const clients: { destroy(): void }[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-seed-flow-'))
  s3 = await startS3rver({ buckets: [BUCKET] })
  sns = await startSnsSigner()
  plainHttp = createServer((_req, res) => {
    plainHttpHits++
    res.end(sns.certPem)
  })
  await new Promise<void>((resolve) => plainHttp.listen(0, '127.0.0.1', resolve))

  const fakeOptions: Parameters<typeof startElasticTranscoderFake>[0] = {
    s3Endpoint: s3.endpoint,
    pipelines: [
      {
        Id: '1111111111111-aaaaaa',
        Name: 'Video Files',
        InputBucket: BUCKET,
        OutputBucket: BUCKET,
      },
      {
        Id: '2222222222222-bbbbbb',
        Name: 'Audio Files (old)',
        InputBucket: BUCKET,
        OutputBucket: BUCKET,
      },
      {
        Id: '3333333333333-cccccc',
        Name: 'Audio Files',
        InputBucket: BUCKET,
        OutputBucket: BUCKET,
      },
      { Id: '4444444444444-dddddd', Name: 'Thumbnails', InputBucket: BUCKET, OutputBucket: BUCKET },
    ],
    // Jobs wait until the test starts them: forged notifications get their chance first.
    hold: true,
  }
  et = await startElasticTranscoderFake(fakeOptions)

  const s3client = s3rverClient(s3.endpoint)
  const etClient = elasticTranscoderClient(et.endpoint)
  clients.push(s3client, etClient)
  service = createTranscoder({
    storage: s3Storage({ client: s3client, bucket: BUCKET, prefix: 'media/' }),
    engine: elasticTranscoderEngine({
      client: etClient,
      pipelineName: 'Audio Files',
      objectKeyPrefix: 'media/',
    }),
    repository: memoryRepository(),
    // Longer than the test: a job that completes did so by notification, not by polling.
    pollIntervalMs: 3_600_000,
  })
  const { default: Fastify } = await import(pathToFileURL(fastifyRequire.resolve('fastify')).href)
  app = Fastify()
  await app.register(transcodekit, {
    service,
    prefix: '/api',
    notifications: snsVerifier({
      topicArns: [TOPIC],
      trustedCertHost: /^127\.0\.0\.1$/,
      fetch: sns.fetch,
    }),
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  // The pipeline's topic delivers to the app's route (an SNS subscription).
  fakeOptions.notifications = {
    signer: sns,
    topicArn: TOPIC,
    endpoint: `${base}/api/notifications/sns`,
  }
})

afterAll(async () => {
  await app?.close()
  await service?.close()
  for (const client of clients) client.destroy()
  await et?.close()
  await sns?.close()
  await new Promise((resolve) => plainHttp?.close(resolve))
  await s3?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

async function until<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  what: string,
): Promise<T> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const value = await read()
    if (done(value)) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

function etMessage(job: Job, state: string, status: string) {
  return JSON.stringify({
    state,
    version: '2012-09-25',
    jobId: job.engineJobId,
    pipelineId: '3333333333333-cccccc',
    outputKeyPrefix: `media/${job.outputs[0]!.storageKey.replace(/[^/]+$/, '')}`,
    outputs: job.outputs.map((o, i) => ({
      id: String(i + 1),
      key: o.storageKey.split('/').at(-1),
      status,
      duration: 4,
    })),
  })
}

function post(envelope: SnsEnvelope | string) {
  return sns.deliver(`${base}/api/notifications/sns`, envelope)
}

describe('the seed flow through Elastic Transcoder (wire fake), S3 (s3rver) and SNS', () => {
  it('uploads an mp3, runs one job with the seed presets, completes by notification, serves the outputs', async () => {
    const source = await makeTone(join(dir, 'my_mp3.mp3'), { seconds: 4, format: 'mp3' })
    const form = new FormData()
    for (const preset of SEED_PRESETS) form.append('presets', preset)
    form.append('file', await openAsBlob(source, { type: 'audio/mpeg' }), 'my_mp3.mp3')
    const res = await fetch(`${base}/api/uploads`, { method: 'POST', body: form })
    expect(res.status).toBe(201)
    const { asset, job: created } = (await res.json()) as { asset: { id: string }; job: Job }
    // The original is in the bucket, under the storage prefix.
    const originalKey = (await service.getAsset(asset.id)).storageKey
    expect(await s3.listKeys(BUCKET, `media/${asset.id}/`)).toEqual([`media/${originalKey}`])
    expect((await s3.getObject(BUCKET, `media/${originalKey}`))?.length).toBeGreaterThan(10_000)

    // Submitted: the pipeline was found on page 3 of 4, and one job was created.
    const submitted = await until(
      () => service.getJob(created.id),
      (j) => j.engineJobId !== null,
      'submission',
    )
    const listed = et.requests.filter((r) => r.path === '/2012-09-25/pipelines')
    expect(listed).toHaveLength(4)
    const creates = et.requests.filter((r) => r.method === 'POST' && r.path === '/2012-09-25/jobs')
    expect(creates).toHaveLength(1)
    const body = creates[0]?.body as {
      PipelineId: string
      Input: { Key: string }
      OutputKeyPrefix: string
      Outputs: unknown[]
    }
    expect(body.PipelineId).toBe('3333333333333-cccccc')
    expect(body.Input.Key).toBe(`media/${originalKey}`)
    expect(body.OutputKeyPrefix).toBe(`media/${asset.id}/${created.id}/`)
    expect(body.Outputs).toEqual([
      { Key: 'wav.wav', PresetId: '1351620000001-300300' },
      { Key: 'flac.flac', PresetId: '1351620000001-300110' },
      { Key: 'aac-256k.m4a', PresetId: '1351620000001-100110' },
    ])
    expect(submitted.state).toBe('submitted')

    // Forged, misdirected and stale notifications: each refused with 403, the job unchanged,
    // and no certificate fetched from anywhere but the trusted host.
    const before = await service.getJob(created.id)
    const completed = etMessage(before, 'COMPLETED', 'Complete')
    const unsigned = sns.notification({ topicArn: TOPIC, message: completed })
    delete unsigned.Signature
    const { generateKeyPairSync } = await import('node:crypto')
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    })
    const fields = () => ({
      Type: 'Notification',
      MessageId: crypto.randomUUID(),
      TopicArn: TOPIC,
      Message: completed,
      Timestamp: new Date().toISOString(),
    })
    const attempts: Array<[string, SnsEnvelope | string]> = [
      ['unsigned', unsigned],
      ['wrong signature', sns.sign(fields(), { keyPem: otherKey as string })],
      [
        'evil certificate host',
        sns.sign(fields(), {
          certUrl: 'https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-x.pem',
        }),
      ],
      [
        'certificate over http',
        sns.sign(fields(), {
          certUrl: `http://127.0.0.1:${(plainHttp.address() as AddressInfo).port}/cert.pem`,
        }),
      ],
      [
        'wrong topic',
        sns.notification({
          topicArn: 'arn:aws:sns:eu-west-1:123456789012:other',
          message: completed,
        }),
      ],
      [
        'too old',
        sns.notification({
          topicArn: TOPIC,
          message: completed,
          timestamp: new Date(Date.now() - 2 * 3_600_000),
        }),
      ],
      ['not JSON', 'this is not an SNS message'],
    ]
    for (const [what, envelope] of attempts) {
      const answer = await post(envelope)
      expect(answer.status, what).toBeGreaterThanOrEqual(400)
      expect(answer.status, what).toBeLessThan(500)
      const job = await service.getJob(created.id)
      expect({ state: job.state, progress: job.progress, updatedAt: job.updatedAt }, what).toEqual({
        state: before.state,
        progress: before.progress,
        updatedAt: before.updatedAt,
      })
    }
    expect(sns.fetched.every((url) => url.startsWith('https://127.0.0.1:'))).toBe(true)
    expect(plainHttpHits).toBe(0)

    // A genuine PROGRESSING notification is applied; its replay is refused.
    const progressing = sns.notification({
      topicArn: TOPIC,
      message: etMessage(before, 'PROGRESSING', 'Progressing'),
    })
    expect((await post(progressing)).status).toBe(200)
    const moving = await service.getJob(created.id)
    expect(moving.state).toBe('progressing')
    const replay = await post(progressing)
    expect(replay.status).toBe(403)
    expect(JSON.parse(replay.body).code).toMatch(/NOTIFICATION_REJECTED/)
    expect((await service.getJob(created.id)).updatedAt).toEqual(moving.updatedAt)

    // The service runs the job; its COMPLETED notification completes ours.
    et.start(submitted.engineJobId as string)
    const etJob = await et.settled(submitted.engineJobId as string)
    expect(etJob.Status).toBe('Complete')
    expect(
      et.deliveries.filter((d) => d.jobId === etJob.Id).map((d) => [d.state, d.status]),
    ).toEqual([
      ['PROGRESSING', 200],
      ['COMPLETED', 200],
    ])
    const done = await service.getJob(created.id)
    expect(done.state).toBe('complete')
    expect(
      et.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/2012-09-25/jobs/')),
    ).toHaveLength(0)

    // Recorded and downloadable: each output from its URL, checked with ffprobe.
    const view = (await (await fetch(`${base}/api/jobs/${created.id}`)).json()) as {
      state: string
      outputs: Array<{
        presetId: string
        state: string
        size: number
        url: string
        storageKey: string
      }>
    }
    expect(view.state).toBe('complete')
    const expected = [
      { presetId: 'wav', format: 'wav', codec: 'pcm_s16le' },
      { presetId: 'flac', format: 'flac', codec: 'flac' },
      { presetId: 'aac-256k', format: 'mov,mp4,m4a,3gp,3g2,mj2', codec: 'aac' },
    ]
    for (const want of expected) {
      const output = view.outputs.find((o) => o.presetId === want.presetId)
      expect(output?.state).toBe('complete')
      const download = await fetch(new URL(output!.url, base))
      expect(download.status).toBe(200)
      const bytes = Buffer.from(await download.arrayBuffer())
      expect(bytes.length).toBe(output!.size)
      const file = join(dir, `out-${want.presetId}`)
      await writeFile(file, bytes)
      const probed = await probeMedia(file)
      expect(probed.formatName).toBe(want.format)
      expect(probed.streams[0]?.codec).toBe(want.codec)
      expect(probed.durationSec).toBeCloseTo(4, 0)
    }
  })

  it('confirms the SNS subscription only once the confirmation verifies', async () => {
    const forged = { ...sns.subscriptionConfirmation({ topicArn: TOPIC, token: 'forged-token' }) }
    forged.SubscribeURL = forged.SubscribeURL!.replace('forged-token', 'other-token')
    expect((await post(forged)).status).toBe(403)
    expect(sns.confirmed).toEqual([])
    const genuine = sns.subscriptionConfirmation({ topicArn: TOPIC, token: 'genuine-token' })
    const answer = await post(genuine)
    expect(answer.status).toBe(200)
    expect(JSON.parse(answer.body)).toEqual({ type: 'SubscriptionConfirmation', jobId: null })
    expect(sns.confirmed).toEqual(['genuine-token'])
  })
})
