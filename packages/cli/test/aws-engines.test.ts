import { openAsBlob } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { probeMedia } from '@transcodekit/core'
import { makeTone } from '@transcodekit/core/testing'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  type ElasticTranscoderFake,
  startElasticTranscoderFake,
} from '../../../test/fakes/elastic-transcoder-fake.ts'
import {
  type MediaConvertFake,
  startMediaConvertFake,
} from '../../../test/fakes/mediaconvert-fake.ts'
import { type S3rverHandle, startS3rver } from '../../../test/fakes/s3rver-server.ts'
import { followJob, type RunningServer, startServer } from './server-process.ts'

/**
 * ENGINE=elastic-transcoder and ENGINE=mediaconvert, switched on by the environment alone: the
 * example server runs as a child process against s3rver and the wire fakes of the two services
 * (which really transcode with ffmpeg from and to the bucket). The job completes by polling
 * (ReadJob / GetJob): the server has no way to trust the fakes' test certificate host for SNS
 * from its environment, and production defaults are not loosened for tests.
 */
const BUCKET = 'example-aws-engines'
const SEED_PRESETS = ['1351620000001-300300', '1351620000001-300110', '1351620000001-100110']
const EXPECTED = [
  { presetId: 'wav', format: 'wav', codec: 'pcm_s16le' },
  { presetId: 'flac', format: 'flac', codec: 'flac' },
  { presetId: 'aac-256k', format: 'mov,mp4,m4a,3gp,3g2,mj2', codec: 'aac' },
]

let dir: string
let s3: S3rverHandle
let mp3: string
let server: RunningServer | null = null
const fakes: Array<{ close(): Promise<void> }> = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'transcodekit-example-aws-'))
  s3 = await startS3rver({ buckets: [BUCKET] })
  mp3 = await makeTone(join(dir, 'my_mp3.mp3'), { seconds: 3, format: 'mp3' })
})
afterEach(async () => {
  await server?.stop('SIGKILL')
  server = null
})
afterAll(async () => {
  for (const fake of fakes) await fake.close()
  await s3?.close()
  await rm(dir, { recursive: true, force: true })
})

/** The environment an operator would set, pointed at the fakes. */
function awsEnv(name: string, engine: Record<string, string>): Record<string, string> {
  return {
    DATA_DIR: join(dir, name),
    DATABASE_URL: 'memory://',
    STORAGE: 's3',
    S3_BUCKET: BUCKET,
    S3_ENDPOINT: s3.endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    S3_PREFIX: `${name}/`,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    ...engine,
  }
}

/** Uploads the seed's mp3 with its three presets and follows the job to its end. */
async function seedUpload(name: string) {
  const form = new FormData()
  for (const preset of SEED_PRESETS) form.append('presets', preset)
  form.append('file', await openAsBlob(mp3, { type: 'audio/mpeg' }), 'my_mp3.mp3')
  const created = await fetch(`${server!.url}/api/uploads`, { method: 'POST', body: form })
  expect(created.status).toBe(201)
  const { asset, job } = (await created.json()) as { asset: { id: string }; job: { id: string } }
  const done = await followJob(server!.url, job.id, 90_000)
  expect(done.state, done.errorMessage ?? '').toBe('complete')

  // Every output in the bucket under the job's prefix, downloadable, and what ffprobe expects.
  expect(done.outputs.map((o) => o.presetId)).toEqual(EXPECTED.map((e) => e.presetId))
  for (const want of EXPECTED) {
    const output = done.outputs.find((o) => o.presetId === want.presetId)!
    expect(output.state).toBe('complete')
    expect(output.url).toMatch(
      new RegExp(`^${s3.endpoint}/${BUCKET}/${name}/${asset.id}/${job.id}/`),
    )
    const download = await fetch(output.url!)
    expect(download.status).toBe(200)
    const bytes = Buffer.from(await download.arrayBuffer())
    expect(bytes.length).toBe(output.size)
    const file = join(dir, `${name}-${want.presetId}`)
    await writeFile(file, bytes)
    const probed = await probeMedia(file)
    expect(probed.formatName).toBe(want.format)
    expect(probed.streams[0]?.codec).toBe(want.codec)
    expect(probed.durationSec).toBeCloseTo(3, 0)
  }
  const keys = await s3.listKeys(BUCKET, `${name}/`)
  expect(keys).toHaveLength(1 + EXPECTED.length)
  return { asset, job }
}

describe('the example server with STORAGE=s3 and a remote engine, from its environment', () => {
  it('ENGINE=elastic-transcoder: pipeline found by name, one job with the seed presets, completed by ReadJob', async () => {
    const et: ElasticTranscoderFake = await startElasticTranscoderFake({
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
          Name: 'Audio Files',
          InputBucket: BUCKET,
          OutputBucket: BUCKET,
        },
        {
          Id: '3333333333333-cccccc',
          Name: 'Thumbnails',
          InputBucket: BUCKET,
          OutputBucket: BUCKET,
        },
      ],
    })
    fakes.push(et)
    server = await startServer(
      awsEnv('et', {
        ENGINE: 'elastic-transcoder',
        ET_PIPELINE_NAME: 'Audio Files',
        ET_ENDPOINT: et.endpoint,
      }),
    )
    const { asset, job } = await seedUpload('et')

    // Every page of ListPipelines walked (one pipeline a page: a name must match exactly one),
    // then one CreateJob.
    expect(et.requests.filter((r) => r.path === '/2012-09-25/pipelines')).toHaveLength(3)
    const creates = et.requests.filter((r) => r.method === 'POST' && r.path === '/2012-09-25/jobs')
    expect(creates).toHaveLength(1)
    expect(creates[0]!.body).toMatchObject({
      PipelineId: '2222222222222-bbbbbb',
      OutputKeyPrefix: `et/${asset.id}/${job.id}/`,
      Outputs: [
        { Key: 'wav.wav', PresetId: SEED_PRESETS[0] },
        { Key: 'flac.flac', PresetId: SEED_PRESETS[1] },
        { Key: 'aac-256k.m4a', PresetId: SEED_PRESETS[2] },
      ],
    })
    const [etJob] = [...et.jobs.values()]
    expect(etJob!.Status).toBe('Complete')
    // Completed by polling: the server read the job.
    expect(
      et.requests.filter((r) => r.method === 'GET' && r.path === `/2012-09-25/jobs/${etJob!.Id}`)
        .length,
    ).toBeGreaterThan(0)
    expect(await server.stop('SIGTERM'), server.output().slice(-2000)).toBe(0)
    server = null
  }, 150_000)

  it('ENGINE=mediaconvert: the same seed presets as MediaConvert outputs, completed by GetJob', async () => {
    const mc: MediaConvertFake = await startMediaConvertFake({ s3Endpoint: s3.endpoint })
    fakes.push(mc)
    server = await startServer(
      awsEnv('mc', {
        ENGINE: 'mediaconvert',
        MEDIACONVERT_ENDPOINT: mc.endpoint,
        MEDIACONVERT_ROLE: 'arn:aws:iam::123456789012:role/MediaConvert',
      }),
    )
    const { job } = await seedUpload('mc')
    const [mcJob] = [...mc.jobs.values()]
    expect(mc.jobs.size).toBe(1)
    expect(mcJob!.clientRequestToken).toBe(job.id)
    expect(mcJob!.status).toBe('COMPLETE')
    expect(mcJob!.role).toBe('arn:aws:iam::123456789012:role/MediaConvert')
    expect(mc.requests.filter((r) => r.method === 'GET').length).toBeGreaterThan(0)
    expect(await server.stop('SIGTERM'), server.output().slice(-2000)).toBe(0)
    server = null
  }, 150_000)
})
