import { openAsBlob } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mediaConvertEngine, s3Storage, snsVerifier } from '../packages/aws/src/index.ts'
import { mediaConvertClient, s3rverClient } from '../packages/aws/test/aws-clients.ts'
import {
  createTranscoder,
  type Job,
  memoryRepository,
  probeMedia,
  type TranscodeService,
} from '../packages/core/src/index.ts'
import { makeVideo } from '../packages/core/src/testing/index.ts'
import transcodekit from '../packages/fastify/src/index.ts'
import {
  type MediaConvertFake,
  type MediaConvertFakeOptions,
  startMediaConvertFake,
} from './fakes/mediaconvert-fake.ts'
import { type S3rverHandle, startS3rver } from './fakes/s3rver-server.ts'
import { type SnsSigner, startSnsSigner } from './fakes/sns-signer.ts'

/**
 * An app written for Elastic Transcoder, moved to MediaConvert: the same preset ids, a video
 * uploaded through the Fastify plugin, the job built from the catalog, completed by the
 * EventBridge event that SNS delivers to the plugin's route.
 */
const BUCKET = 'tk-mc-flow'
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:mediaconvert-job-state'
const fastifyRequire = createRequire(new URL('../packages/fastify/package.json', import.meta.url))

let dir: string
let s3: S3rverHandle
let sns: SnsSigner
let mc: MediaConvertFake
let service: TranscodeService
let app: {
  listen(o: object): Promise<string>
  close(): Promise<void>
  server: { address(): unknown }
}
let base: string
const clients: { destroy(): void }[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-mc-flow-'))
  s3 = await startS3rver({ buckets: [BUCKET] })
  sns = await startSnsSigner()
  const fakeOptions: MediaConvertFakeOptions = { s3Endpoint: s3.endpoint }
  mc = await startMediaConvertFake(fakeOptions)
  const s3client = s3rverClient(s3.endpoint)
  const client = mediaConvertClient(mc.endpoint)
  clients.push(s3client, client)
  service = createTranscoder({
    storage: s3Storage({ client: s3client, bucket: BUCKET }),
    engine: mediaConvertEngine({
      client,
      role: 'arn:aws:iam::123456789012:role/MediaConvert',
      bucket: BUCKET,
    }),
    repository: memoryRepository(),
    pollIntervalMs: 3_600_000,
  })
  const { default: Fastify } = await import(pathToFileURL(fastifyRequire.resolve('fastify')).href)
  app = Fastify()
  await (app as unknown as { register(...a: unknown[]): Promise<void> }).register(transcodekit, {
    service,
    notifications: snsVerifier({
      topicArns: [TOPIC],
      trustedCertHost: /^127\.0\.0\.1$/,
      fetch: sns.fetch,
    }),
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  fakeOptions.notifications = {
    signer: sns,
    topicArn: TOPIC,
    endpoint: `${base}/notifications/sns`,
  }
})

afterAll(async () => {
  await app?.close()
  await service?.close()
  for (const client of clients) client.destroy()
  await mc?.close()
  await sns?.close()
  await s3?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('Elastic Transcoder preset ids on MediaConvert, end to end', () => {
  it('uploads a video, runs MP4 480p (ET 1351620000001-000020) and HLS, completes by EventBridge event', async () => {
    const source = await makeVideo(join(dir, 'clip.mp4'), { seconds: 2, width: 320, height: 240 })
    const form = new FormData()
    form.append('presets', '1351620000001-000020')
    form.append('presets', '1351620000001-200050')
    form.append('file', await openAsBlob(source, { type: 'video/mp4' }), 'clip.mp4')
    const res = await fetch(`${base}/uploads`, { method: 'POST', body: form })
    expect(res.status).toBe(201)
    const { job } = (await res.json()) as { job: Job }
    expect(job.outputs.map((o) => o.presetId)).toEqual(['mp4-480p', 'hls-400k'])

    let done: Job | undefined
    for await (const current of service.watch(job.id, { signal: AbortSignal.timeout(60_000) })) {
      done = current
    }
    expect(done?.state, done?.errorMessage ?? '').toBe('complete')
    const mcJob = await mc.settled(done?.engineJobId as string)
    expect(mcJob?.clientRequestToken).toBe(job.id)
    // Completed by the pushed event, not by polling.
    expect(mc.requests.filter((r) => r.method === 'GET')).toHaveLength(0)
    expect(
      mc.deliveries.filter((d) => d.jobId === mcJob?.id).map((d) => [d.status, d.httpStatus]),
    ).toEqual([
      ['SUBMITTED', 200],
      ['PROGRESSING', 200],
      ['COMPLETE', 200],
    ])

    const view = (await (await fetch(`${base}/jobs/${job.id}`)).json()) as {
      outputs: Array<{ presetId: string; state: string; size: number; url: string }>
    }
    const mp4 = view.outputs.find((o) => o.presetId === 'mp4-480p')
    expect(mp4?.state).toBe('complete')
    const bytes = Buffer.from(await (await fetch(new URL(mp4!.url, base))).arrayBuffer())
    expect(bytes.length).toBe(mp4!.size)
    await writeFile(join(dir, 'out.mp4'), bytes)
    const probed = await probeMedia(join(dir, 'out.mp4'))
    expect(probed.streams.find((s) => s.type === 'video')).toMatchObject({
      codec: 'h264',
      width: 320,
    })
    const hls = view.outputs.find((o) => o.presetId === 'hls-400k')
    const playlist = await (await fetch(new URL(hls!.url, base))).text()
    expect(playlist).toContain('#EXTM3U')
  })
})
