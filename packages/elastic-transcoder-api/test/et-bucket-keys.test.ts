import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  CreateJobCommand,
  CreatePipelineCommand,
  type ElasticTranscoderClient,
  ReadJobCommand,
  waitUntilJobComplete,
} from '@aws-sdk/client-elastic-transcoder'
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { s3Storage } from '@transcodekit/aws'
import {
  createTranscoder,
  ffmpegEngine,
  localStorage,
  memoryRepository,
  type TranscodeService,
} from '@transcodekit/core'
import { makeTone, probe } from '@transcodekit/core/testing'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type S3rverHandle, startS3rver } from '../../../test/fakes/s3rver-server.ts'
import { s3rverClient } from '../../aws/test/aws-clients.ts'
import { etClient, startEtApp } from './et-test-app.ts'

// Keys as real Elastic Transcoder apps name them: spaces, parentheses, accents.
const INPUT_KEY = 'uploads/My Song (live).mp3'
const PREFIX = 'música/'
const OUTPUT_KEY = 'canción (en vivo).wav'
const WAV = '1351620000001-300300'
const S3_BUCKETS = { input: 'tk-keys-input', output: 'tk-keys-output' }

let dir: string
let s3: S3rverHandle
let s3client: S3Client
let service: TranscodeService
let et: { app: FastifyInstance; endpoint: string }
let client: ElasticTranscoderClient

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-et-keys-'))
  s3 = await startS3rver({ buckets: Object.values(S3_BUCKETS) })
  s3client = s3rverClient(s3.endpoint)
  service = createTranscoder({
    storage: localStorage({ root: join(dir, 'server') }),
    engine: ffmpegEngine(),
    repository: memoryRepository(),
  })
  et = await startEtApp({
    service,
    buckets: {
      'folder-in': localStorage({ root: join(dir, 'in'), keyRule: 'bucket' }),
      'folder-out': localStorage({ root: join(dir, 'out'), keyRule: 'bucket' }),
      [S3_BUCKETS.input]: s3Storage({
        client: s3client,
        bucket: S3_BUCKETS.input,
        keyRule: 'bucket',
      }),
      [S3_BUCKETS.output]: s3Storage({
        client: s3client,
        bucket: S3_BUCKETS.output,
        keyRule: 'bucket',
      }),
    },
  })
  client = etClient(et.endpoint)
  const song = await readFile(await makeTone(join(dir, 'song.mp3'), { seconds: 2, format: 'mp3' }))
  await mkdir(join(dir, 'in', 'uploads'), { recursive: true })
  await writeFile(join(dir, 'in', ...INPUT_KEY.split('/')), song)
  await s3client.send(
    new PutObjectCommand({ Bucket: S3_BUCKETS.input, Key: INPUT_KEY, Body: song }),
  )
})

afterAll(async () => {
  await et?.app.close()
  await service?.close()
  s3client?.destroy()
  await s3?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

async function createPipeline(input: string, output: string): Promise<string> {
  const { Pipeline } = await client.send(
    new CreatePipelineCommand({
      Name: `${input} to ${output}`,
      InputBucket: input,
      OutputBucket: output,
      Role: 'arn:aws:iam::123456789012:role/Elastic_Transcoder_Default_Role',
    }),
  )
  return Pipeline?.Id as string
}

/** Runs one job to its end and answers its output as ReadJob tells it. */
async function transcode(pipelineId: string) {
  const { Job } = await client.send(
    new CreateJobCommand({
      PipelineId: pipelineId,
      Input: { Key: INPUT_KEY },
      OutputKeyPrefix: PREFIX,
      Outputs: [{ Key: OUTPUT_KEY, PresetId: WAV }],
    }),
  )
  await waitUntilJobComplete({ client, maxWaitTime: 60, minDelay: 1, maxDelay: 1 }, { Id: Job?.Id })
  const { Job: done } = await client.send(new ReadJobCommand({ Id: Job?.Id }))
  expect(done?.Input?.Key).toBe(INPUT_KEY)
  return done?.Outputs?.[0]
}

async function codecOf(bytes: Buffer): Promise<string | undefined> {
  const file = join(dir, `probe-${Date.now()}.wav`)
  await writeFile(file, bytes)
  return (await probe(file)).streams[0]?.codec_name
}

describe('bucket keys as S3 takes them', () => {
  it('reads and writes keys with spaces and accents in folder buckets, under exactly those names', async () => {
    const output = await transcode(await createPipeline('folder-in', 'folder-out'))
    expect(output).toMatchObject({ Key: OUTPUT_KEY, Status: 'Complete' })
    expect(await readdir(join(dir, 'out', 'música'))).toEqual([OUTPUT_KEY])
    const bytes = await readFile(join(dir, 'out', 'música', OUTPUT_KEY))
    expect(bytes.length).toBe(output?.FileSize)
    expect(await codecOf(bytes)).toBe('pcm_s16le')
  })

  it('reads and writes them in S3 buckets (s3rver), under exactly those keys', async () => {
    const output = await transcode(await createPipeline(S3_BUCKETS.input, S3_BUCKETS.output))
    expect(output).toMatchObject({ Key: OUTPUT_KEY, Status: 'Complete' })
    expect(await s3.listKeys(S3_BUCKETS.output)).toEqual([PREFIX + OUTPUT_KEY])
    const bytes = (await s3.getObject(S3_BUCKETS.output, PREFIX + OUTPUT_KEY)) as Buffer
    expect(bytes.length).toBe(output?.FileSize)
    expect(await codecOf(bytes)).toBe('pcm_s16le')
  })

  it('refuses keys that leave the folder or carry control characters, leaving nothing behind', async () => {
    const pipelineId = await createPipeline('folder-in', 'folder-out')
    const server = await readdir(join(dir, 'server'), { recursive: true })
    const out = await readdir(join(dir, 'out'), { recursive: true })
    const refused = [
      { Input: { Key: '../song.mp3' }, Outputs: [{ Key: 'x.wav', PresetId: WAV }] },
      {
        Input: { Key: 'uploads/./My Song (live).mp3' },
        Outputs: [{ Key: 'x.wav', PresetId: WAV }],
      },
      {
        Input: { Key: INPUT_KEY },
        OutputKeyPrefix: 'a/../../',
        Outputs: [{ Key: 'x.wav', PresetId: WAV }],
      },
      { Input: { Key: INPUT_KEY }, Outputs: [{ Key: '../x.wav', PresetId: WAV }] },
      { Input: { Key: INPUT_KEY }, Outputs: [{ Key: 'bell\u0007.wav', PresetId: WAV }] },
      { Input: { Key: INPUT_KEY }, Outputs: [{ Key: 'new\nline.wav', PresetId: WAV }] },
      { Input: { Key: INPUT_KEY }, Outputs: [{ Key: 'back\\slash.wav', PresetId: WAV }] },
      { Input: { Key: INPUT_KEY }, Outputs: [{ Key: 'twice//x.wav', PresetId: WAV }] },
      { Input: { Key: INPUT_KEY }, Outputs: [{ Key: '.tmp/x.wav', PresetId: WAV }] },
    ]
    for (const request of refused) {
      const error = await client
        .send(new CreateJobCommand({ PipelineId: pipelineId, ...request }))
        .catch((e) => e)
      expect(error.name, JSON.stringify(request)).toBe('ValidationException')
      expect(error.$metadata.httpStatusCode).toBe(400)
    }
    expect(await readdir(join(dir, 'server'), { recursive: true })).toEqual(server)
    expect(await readdir(join(dir, 'out'), { recursive: true })).toEqual(out)
  })
})
