import { randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createPresetCatalog,
  type EngineJobRequest,
  type EngineStatus,
  type MediaInfo,
  originalKey,
  outputKey,
  type Preset,
  probeMedia,
} from '@transcodekit/core'
import { engineConformance, makeTone, makeVideo } from '@transcodekit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type MediaConvertFake,
  startMediaConvertFake,
} from '../../../test/fakes/mediaconvert-fake.ts'
import { type S3rverHandle, startS3rver } from '../../../test/fakes/s3rver-server.ts'
import { type SnsSigner, startSnsSigner } from '../../../test/fakes/sns-signer.ts'
import {
  mediaConvertEngine,
  presetToMediaConvertOutput,
  type S3Storage,
  s3Storage,
  snsVerifier,
} from '../src/index.ts'
import { mediaConvertClient, s3rverClient } from './aws-clients.ts'

const BUCKET = 'tk-mediaconvert'
const ROLE = 'arn:aws:iam::123456789012:role/MediaConvertRole'
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:mediaconvert-events'
const catalog = createPresetCatalog()

let s3: S3rverHandle
let sns: SnsSigner
let mc: MediaConvertFake
let held: MediaConvertFake
let dir: string
let storage: S3Storage
let audio: { key: string; media: MediaInfo }
let video: { key: string; media: MediaInfo }
let app: Server
const pushed: Array<EngineStatus | null> = []
const clients: { destroy(): void }[] = []

function engine(endpoint: string) {
  const client = mediaConvertClient(endpoint)
  clients.push(client)
  return mediaConvertEngine({ client, role: ROLE, bucket: BUCKET, objectKeyPrefix: 'app/' })
}

beforeAll(async () => {
  s3 = await startS3rver({ buckets: [BUCKET] })
  sns = await startSnsSigner()
  // The app's side of the notifications: verify the SNS delivery, then parse its event.
  const verifier = snsVerifier({
    topicArns: [TOPIC],
    trustedCertHost: /^127\.0\.0\.1$/,
    fetch: sns.fetch,
  })
  const parser = mediaConvertEngine({
    client: mediaConvertClient('http://127.0.0.1:9'),
    role: ROLE,
    bucket: BUCKET,
    objectKeyPrefix: 'app/',
  })
  app = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    try {
      const message = await verifier.verify(Buffer.concat(chunks).toString('utf8'))
      pushed.push(parser.parseNotification(message.Message))
      res.writeHead(204).end()
    } catch {
      res.writeHead(403).end()
    }
  })
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
  const notifications = {
    signer: sns,
    topicArn: TOPIC,
    endpoint: `http://127.0.0.1:${(app.address() as AddressInfo).port}/sns`,
  }
  mc = await startMediaConvertFake({ s3Endpoint: s3.endpoint, notifications })
  held = await startMediaConvertFake({ s3Endpoint: s3.endpoint, hold: true })
  const client = s3rverClient(s3.endpoint)
  clients.push(client)
  storage = s3Storage({ client, bucket: BUCKET, prefix: 'app/' })
  dir = await mkdtemp(join(tmpdir(), 'tk-mc-'))
  const mp3 = await makeTone(join(dir, 'tone.mp3'), { seconds: 3, format: 'mp3' })
  audio = { key: originalKey('', randomUUID(), 'mp3'), media: await probeMedia(mp3) }
  await storage.put(audio.key, createReadStream(mp3))
  const mp4 = await makeVideo(join(dir, 'clip.mp4'), { seconds: 2, width: 320, height: 240 })
  video = { key: originalKey('', randomUUID(), 'mp4'), media: await probeMedia(mp4) }
  await storage.put(video.key, createReadStream(mp4))
})

afterAll(async () => {
  for (const client of clients) client.destroy()
  await mc?.close()
  await held?.close()
  await sns?.close()
  await new Promise((resolve) => app?.close(resolve))
  await s3?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

function request(input: { key: string; media: MediaInfo }, names: string[]): EngineJobRequest {
  const assetId = randomUUID()
  const jobId = randomUUID()
  return {
    jobId,
    input,
    storage,
    outputs: catalog.resolveAll(names).map((preset: Preset) => ({
      name: preset.id,
      key: outputKey('', assetId, jobId, preset.id, preset.extension),
      preset,
    })),
  }
}

const run = { signal: new AbortController().signal, onStatus: () => {} }

describe('presetToMediaConvertOutput', () => {
  it('maps the catalog (Elastic Transcoder ids included) to MediaConvert output groups', () => {
    const wav = presetToMediaConvertOutput(catalog.resolve('1351620000001-300300'), 's3://b/p/wav')
    expect(wav?.OutputGroupSettings).toEqual({
      Type: 'FILE_GROUP_SETTINGS',
      FileGroupSettings: { Destination: 's3://b/p/wav' },
    })
    expect(wav?.Outputs?.[0]).toMatchObject({
      Extension: 'wav',
      ContainerSettings: { Container: 'RAW' },
      AudioDescriptions: [
        {
          CodecSettings: {
            Codec: 'WAV',
            WavSettings: { BitDepth: 16, SampleRate: 44100, Channels: 2 },
          },
        },
      ],
    })
    const m4a = presetToMediaConvertOutput(
      catalog.resolve('1351620000001-100110'),
      's3://b/p/aac-256k',
    )
    expect(m4a?.Outputs?.[0]).toMatchObject({
      Extension: 'm4a',
      ContainerSettings: { Container: 'MP4' },
      AudioDescriptions: [
        {
          CodecSettings: {
            Codec: 'AAC',
            AacSettings: { Bitrate: 256000, CodingMode: 'CODING_MODE_2_0' },
          },
        },
      ],
    })
    expect(m4a?.Outputs?.[0]?.VideoDescription).toBeUndefined()
    const mp4 = presetToMediaConvertOutput(
      catalog.resolve('1351620000001-000010'),
      's3://b/p/mp4-720p',
    )
    expect(mp4?.Outputs?.[0]?.VideoDescription).toMatchObject({
      Width: 1280,
      Height: 720,
      ScalingBehavior: 'FIT_NO_UPSCALE',
      CodecSettings: { Codec: 'H_264', H264Settings: { Bitrate: 2400000, CodecProfile: 'MAIN' } },
    })
    const hls = presetToMediaConvertOutput(catalog.resolve('hls'), 's3://b/p/hls-1m')
    expect(hls?.OutputGroupSettings).toMatchObject({
      Type: 'HLS_GROUP_SETTINGS',
      HlsGroupSettings: { SegmentLength: 10 },
    })
    expect(hls?.Outputs?.[0]?.ContainerSettings?.Container).toBe('M3U8')
    expect(presetToMediaConvertOutput(catalog.resolve('waveform'), 's3://b/p/waveform')).toBeNull()
  })

  it('says which presets MediaConvert cannot make under their key', () => {
    const engineUnderTest = engine(mc.endpoint)
    expect(engineUnderTest.unsupportedReason(catalog.resolve('flac'))).toBeNull()
    expect(engineUnderTest.unsupportedReason(catalog.resolve('webm'))).toBeNull()
    expect(engineUnderTest.unsupportedReason(catalog.resolve('waveform'))).toMatch(/waveform/)
    expect(engineUnderTest.unsupportedReason(catalog.resolve('thumbnail'))).toMatch(
      /sequence number/,
    )
  })
})

describe('mediaConvertEngine against the wire fake', () => {
  it('runs the seed job: role, token, s3 input, destinations without extension; outputs land on their keys', async () => {
    const req = request(audio, [
      '1351620000001-300300',
      '1351620000001-300110',
      '1351620000001-100110',
      'mp3-128k',
    ])
    const from = mc.requests.length
    const submitted = await engine(mc.endpoint).run(req, run)
    expect(submitted.state).toBe('submitted')
    const [create] = mc.requests.slice(from).filter((r) => r.method === 'POST')
    const body = create?.body as {
      role: string
      clientRequestToken: string
      settings: {
        inputs: Array<{ fileInput: string }>
        outputGroups: Array<{ outputGroupSettings: { fileGroupSettings: { destination: string } } }>
      }
    }
    expect(body.role).toBe(ROLE)
    expect(body.clientRequestToken).toBe(req.jobId)
    expect(body.settings.inputs[0].fileInput).toBe(`s3://${BUCKET}/app/${audio.key}`)
    expect(
      body.settings.outputGroups.map((g) => g.outputGroupSettings.fileGroupSettings.destination),
    ).toEqual(req.outputs.map((o) => `s3://${BUCKET}/app/${o.key.replace(/\.[a-z0-9]+$/, '')}`))
    await mc.settled(submitted.engineJobId)
    const status = await engine(mc.endpoint).getStatus(submitted.engineJobId)
    expect(status).toMatchObject({ state: 'complete', progress: 100 })
    expect(status.outputs?.map((o) => o.key)).toEqual(req.outputs.map((o) => o.key))
    const codecs: string[] = []
    for (const output of req.outputs) {
      const got = await storage.get(output.key)
      const file = join(dir, `${output.name}.${output.preset.extension}`)
      await writeFile(file, Buffer.concat(await got.body.toArray()))
      const probed = await probeMedia(file)
      codecs.push(probed.streams[0]?.codec ?? '')
      expect(probed.durationSec).toBeCloseTo(3, 0)
    }
    expect(codecs).toEqual(['pcm_s16le', 'flac', 'aac', 'mp3'])
    expect(
      status.outputs?.every(
        (o) => o.durationSec !== null && Math.abs((o.durationSec ?? 0) - 3) < 0.5,
      ),
    ).toBe(true)
  })

  it('makes H.264 MP4 and HLS from a video', async () => {
    const req = request(video, ['mp4-480p', 'hls-400k'])
    const submitted = await engine(mc.endpoint).run(req, run)
    await mc.settled(submitted.engineJobId)
    const status = await engine(mc.endpoint).getStatus(submitted.engineJobId)
    expect(status.state, status.error?.message).toBe('complete')
    const playlist = await storage.get(req.outputs[1]!.key)
    expect(Buffer.concat(await playlist.body.toArray()).toString()).toContain('#EXTM3U')
    const mp4 = await storage.get(req.outputs[0]!.key)
    const file = join(dir, 'out.mp4')
    await writeFile(file, Buffer.concat(await mp4.body.toArray()))
    const probed = await probeMedia(file)
    expect(probed.streams.find((s) => s.type === 'video')).toMatchObject({
      codec: 'h264',
      width: 320,
      height: 240,
    })
  })

  it('is idempotent on our job id (ClientRequestToken)', async () => {
    const req = request(audio, ['wav'])
    const first = await engine(held.endpoint).run(req, run)
    const again = await engine(held.endpoint).run(req, run)
    expect(again.engineJobId).toBe(first.engineJobId)
    expect([...held.jobs.values()].filter((j) => j.clientRequestToken === req.jobId)).toHaveLength(
      1,
    )
    await engine(held.endpoint).cancel(first.engineJobId)
  })

  it('cancels a submitted job; an ended or running one cannot be canceled', async () => {
    const e = engine(held.endpoint)
    const first = await e.run(request(audio, ['wav']), run)
    await e.cancel(first.engineJobId)
    expect((await e.getStatus(first.engineJobId)).state).toBe('canceled')
    await expect(e.cancel(first.engineJobId)).rejects.toMatchObject({ code: 'INVALID_STATE' })
    await expect(e.getStatus('0000000000000-nope')).rejects.toMatchObject({ code: 'NOT_FOUND' })
  })

  it('rejects a bad role at construction and a refused job as ENGINE_REJECTED', async () => {
    expect(() =>
      mediaConvertEngine({
        client: mediaConvertClient(mc.endpoint),
        role: 'admin',
        bucket: BUCKET,
      }),
    ).toThrow(/role/)
    const wrongRole = mediaConvertEngine({
      client: mediaConvertClient(mc.endpoint),
      role: 'arn:aws:iam::1:role/x',
      bucket: BUCKET,
      objectKeyPrefix: 'app/',
    })
    const before = mc.jobs.size
    await expect(wrongRole.run(request(audio, ['wav']), run)).rejects.toMatchObject({
      code: 'ENGINE_REJECTED',
    })
    expect(mc.jobs.size).toBe(before)
  })

  it('turns EventBridge job state changes delivered through signed SNS into statuses', async () => {
    const req = request(audio, ['flac', 'm4a'])
    const submitted = await engine(mc.endpoint).run(req, run)
    await mc.settled(submitted.engineJobId)
    const mine = pushed.filter((s) => s?.engineJobId === submitted.engineJobId)
    expect(mine.map((s) => s?.state)).toEqual(['submitted', 'progressing', 'complete'])
    expect(mine.at(-1)?.outputs?.map((o) => o.key)).toEqual(req.outputs.map((o) => o.key))
    expect(
      mc.deliveries
        .filter((d) => d.jobId === submitted.engineJobId)
        .every((d) => d.httpStatus === 204),
    ).toBe(true)
    const parser = engine(mc.endpoint)
    expect(
      parser.parseNotification({ source: 'aws.s3', 'detail-type': 'Object Created', detail: {} }),
    ).toBeNull()
    expect(parser.parseNotification({ state: 'COMPLETED', jobId: 'x' })).toBeNull()
    expect(
      parser.parseNotification({
        source: 'aws.mediaconvert',
        'detail-type': 'MediaConvert Job State Change',
        detail: { jobId: 'j', status: 'STATUS_UPDATE', jobProgress: { jobPercentComplete: 42 } },
      }),
    ).toEqual({ engineJobId: 'j', state: 'progressing', progress: 42 })
    expect(
      parser.parseNotification({
        source: 'aws.mediaconvert',
        'detail-type': 'MediaConvert Job State Change',
        detail: { jobId: 'j', status: 'ERROR', errorCode: 1010, errorMessage: 'no input' },
      }),
    ).toMatchObject({ state: 'error', error: { code: 'DECODE_FAILED' } })
  })
})

describe('engine conformance', () => {
  let queued: MediaConvertFake
  beforeAll(async () => {
    queued = await startMediaConvertFake({ s3Endpoint: s3.endpoint, hold: 'until-read' })
  })
  afterAll(() => queued?.close())

  engineConformance(
    'mediaconvert (wire fake over s3rver)',
    async () => {
      const s3client = s3rverClient(s3.endpoint)
      const client = mediaConvertClient(queued.endpoint)
      return {
        engine: mediaConvertEngine({
          client,
          role: ROLE,
          bucket: BUCKET,
          objectKeyPrefix: 'suite/',
        }),
        storage: s3Storage({ client: s3client, bucket: BUCKET, prefix: 'suite/' }),
        cleanup: async () => {
          s3client.destroy()
          client.destroy()
        },
      }
    },
    { corruptInputCode: 'DECODE_FAILED', pollIntervalMs: 50 },
  )
})
