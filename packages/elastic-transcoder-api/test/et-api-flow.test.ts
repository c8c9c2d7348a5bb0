import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  CancelJobCommand,
  CreateJobCommand,
  CreatePipelineCommand,
  type ElasticTranscoderClient,
  ListJobsByPipelineCommand,
  ListPipelinesCommand,
  paginateListJobsByPipeline,
  paginateListJobsByStatus,
  paginateListPipelines,
  paginateListPresets,
  ReadJobCommand,
  ReadPipelineCommand,
  UpdatePipelineNotificationsCommand,
  waitUntilJobComplete,
} from '@aws-sdk/client-elastic-transcoder'
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns'
import { mediaConvertEngine, s3Storage } from '@transcodekit/aws'
import {
  createTranscoder,
  ffmpegEngine,
  inProcessQueue,
  memoryRepository,
  type TranscodeService,
} from '@transcodekit/core'
import { makeTone, probe } from '@transcodekit/core/testing'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import {
  type MediaConvertFake,
  startMediaConvertFake,
} from '../../../test/fakes/mediaconvert-fake.ts'
import { type S3rverHandle, startS3rver } from '../../../test/fakes/s3rver-server.ts'
import { type SnsPublishFake, startSnsPublishFake } from '../../../test/fakes/sns-publish-fake.ts'
import { mediaConvertClient, s3rverClient } from '../../aws/test/aws-clients.ts'
import { type EtStore, memoryEtStore } from '../src/index.ts'
import { ALICE, BOB, etClient, startEtApp, startReceiver } from './et-test-app.ts'

// The seed's code path, on an unchanged @aws-sdk/client-elastic-transcoder: only its endpoint
// and credentials point at transcodekit. Input and output buckets are s3rver buckets.
const SEED_PRESETS = ['1351620000001-300300', '1351620000001-300110', '1351620000001-100110']
const BUCKETS = { input: 'tk-et-input', output: 'tk-et-output', internal: 'tk-et-internal' }

let dir: string
let s3: S3rverHandle
let s3client: S3Client
let service: TranscodeService
let held: TranscodeService
let onMediaConvert: TranscodeService
let mc: MediaConvertFake
let mcClient: { destroy(): void }
let converting: { app: FastifyInstance; endpoint: string }
const waitingStore: EtStore = memoryEtStore()
let running: { app: FastifyInstance; endpoint: string }
let waiting: { app: FastifyInstance; endpoint: string }
let receiver: Awaited<ReturnType<typeof startReceiver>>
let alice: ElasticTranscoderClient
let song: Buffer
let snsFake: SnsPublishFake
let sns: SNSClient
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:transcoding-complete'

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-et-api-'))
  s3 = await startS3rver({ buckets: Object.values(BUCKETS) })
  s3client = s3rverClient(s3.endpoint)
  receiver = await startReceiver()
  const buckets = {
    [BUCKETS.input]: s3Storage({ client: s3client, bucket: BUCKETS.input }),
    [BUCKETS.output]: s3Storage({ client: s3client, bucket: BUCKETS.output }),
  }
  const internal = s3Storage({ client: s3client, bucket: BUCKETS.internal })
  service = createTranscoder({
    storage: internal,
    engine: ffmpegEngine(),
    repository: memoryRepository(),
  })
  // A service that takes jobs but runs none: they stay Submitted, for CancelJob and listings.
  held = createTranscoder({
    storage: internal,
    engine: ffmpegEngine(),
    repository: memoryRepository(),
    worker: false,
  })
  const allowed = (url: URL) => url.hostname === '127.0.0.1'
  snsFake = await startSnsPublishFake()
  sns = new SNSClient({
    endpoint: snsFake.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIAFAKE', secretAccessKey: 'fake' },
  })
  running = await startEtApp({
    service,
    buckets,
    pageSize: 20,
    notificationUrlAllowed: allowed,
    snsPublish: (input) => sns.send(new PublishCommand(input)),
    snsTopicAllowed: (arn) => arn === TOPIC,
  })
  waiting = await startEtApp({
    service: held,
    buckets,
    pageSize: 2,
    maxActiveJobsPerOwner: 5,
    store: waitingStore,
    syncIntervalMs: 100,
  })
  // The same API over AWS Elemental MediaConvert (its wire fake, transcoding with ffmpeg over
  // s3rver), the engine polled for the job's state.
  mc = await startMediaConvertFake({ s3Endpoint: s3.endpoint })
  const mediaconvert = mediaConvertClient(mc.endpoint)
  mcClient = mediaconvert
  onMediaConvert = createTranscoder({
    storage: internal,
    engine: mediaConvertEngine({
      client: mediaconvert,
      role: 'arn:aws:iam::123456789012:role/MediaConvert',
      bucket: BUCKETS.internal,
    }),
    repository: memoryRepository(),
    pollIntervalMs: 200,
  })
  converting = await startEtApp({ service: onMediaConvert, buckets })
  alice = etClient(running.endpoint)
  song = await readFile(await makeTone(join(dir, 'song.mp3'), { seconds: 3, format: 'mp3' }))
  await s3client.send(
    new PutObjectCommand({ Bucket: BUCKETS.input, Key: 'media/song.mp3', Body: song }),
  )
})

afterAll(async () => {
  await running?.app.close()
  await waiting?.app.close()
  await converting?.app.close()
  await onMediaConvert?.close()
  mcClient?.destroy()
  await mc?.close()
  await service?.close()
  await held?.close()
  await receiver?.close()
  sns?.destroy()
  await snsFake?.close()
  s3client?.destroy()
  await s3?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** The running service holds no asset, and its bucket no object (the held one runs none yet). */
async function expectNoServerCopy() {
  expect((await service.listAssets()).items).toEqual([])
  const listed = await s3client.send(new ListObjectsV2Command({ Bucket: BUCKETS.internal }))
  expect(listed.Contents ?? []).toEqual([])
}

/** Another app on the service that runs no job, with its own limits, for one test. */
function startHeldApp(options: Partial<Parameters<typeof startEtApp>[0]>) {
  return startEtApp({
    service: held,
    buckets: {
      [BUCKETS.input]: s3Storage({ client: s3client, bucket: BUCKETS.input }),
      [BUCKETS.output]: s3Storage({ client: s3client, bucket: BUCKETS.output }),
    },
    ...options,
  })
}

async function createPipeline(
  client: ElasticTranscoderClient,
  name: string,
  endpoint = '',
  completed = endpoint,
) {
  const { Pipeline } = await client.send(
    new CreatePipelineCommand({
      Name: name,
      InputBucket: BUCKETS.input,
      OutputBucket: BUCKETS.output,
      Role: 'arn:aws:iam::123456789012:role/Elastic_Transcoder_Default_Role',
      Notifications: { Progressing: endpoint, Completed: completed, Warning: '', Error: endpoint },
    }),
  )
  return Pipeline?.Id as string
}

function seedJob(pipelineId: string, base: string) {
  return new CreateJobCommand({
    PipelineId: pipelineId,
    Input: {
      Key: 'media/song.mp3',
      FrameRate: 'auto',
      Resolution: 'auto',
      AspectRatio: 'auto',
      Interlaced: 'auto',
      Container: 'auto',
    },
    Outputs: [
      { Key: `${base}.wav`, PresetId: SEED_PRESETS[0] },
      { Key: `${base}.flac`, PresetId: SEED_PRESETS[1] },
      { Key: `${base}.mp4`, PresetId: SEED_PRESETS[2] },
    ],
  })
}

describe('the seed flow on the Elastic Transcoder API', () => {
  it('finds "Audio Files" by paginator among 125 pipelines, runs the three presets, notifies', async () => {
    for (let batch = 0; batch < 125; batch += 25) {
      await Promise.all(
        Array.from({ length: 25 }, (_, n) => batch + n).map((i) =>
          createPipeline(
            alice,
            i === 101 ? 'Audio Files' : `Pipeline ${i}`,
            i === 101 ? receiver.url : '',
            i === 101 ? TOPIC : '',
          ),
        ),
      )
    }
    let pipelineId: string | undefined
    let pages = 0
    for await (const page of paginateListPipelines({ client: alice }, {})) {
      pages++
      pipelineId ??= page.Pipelines?.find((p) => p.Name === 'Audio Files')?.Id
    }
    expect(pages).toBeGreaterThan(1)
    expect(pipelineId).toMatch(/^\d{13}-[a-z0-9]{6}$/)

    const { Job } = await alice.send(seedJob(pipelineId as string, 'media/song.mp3'))
    expect(Job?.Status).toBe('Submitted')
    expect(Job?.Outputs?.map((o) => o.PresetId)).toEqual(SEED_PRESETS)

    await waitUntilJobComplete(
      { client: alice, maxWaitTime: 60, minDelay: 1, maxDelay: 1 },
      { Id: Job?.Id },
    )
    const { Job: done } = await alice.send(new ReadJobCommand({ Id: Job?.Id }))
    expect(done?.Status).toBe('Complete')
    expect(done?.Timing?.FinishTimeMillis).toBeGreaterThanOrEqual(
      done?.Timing?.SubmitTimeMillis ?? 0,
    )
    const expected = [
      ['media/song.mp3.wav', SEED_PRESETS[0], 'pcm_s16le'],
      ['media/song.mp3.flac', SEED_PRESETS[1], 'flac'],
      ['media/song.mp3.mp4', SEED_PRESETS[2], 'aac'],
    ] as const
    for (const [key, presetId, codec] of expected) {
      const output = done?.Outputs?.find((o) => o.Key === key)
      expect(output).toMatchObject({ PresetId: presetId, Status: 'Complete', Duration: 3 })
      const bytes = await s3.getObject(BUCKETS.output, key)
      expect(bytes?.length).toBe(output?.FileSize)
      const file = join(dir, key.replaceAll('/', '_'))
      await writeFile(file, bytes as Buffer)
      const probed = await probe(file)
      expect(probed.streams.find((s) => s.codec_type === 'audio')?.codec_name).toBe(codec)
      expect(Math.round(Number(probed.format.duration))).toBe(3)
    }

    // Progressing to the HTTP receiver (an SNS-style envelope), Completed to the SNS topic.
    await receiver.next(1)
    await snsFake.next(1)
    const progressing = JSON.parse(receiver.bodies[0]?.Message as string)
    expect(progressing).toMatchObject({ state: 'PROGRESSING', jobId: Job?.Id, pipelineId })
    expect(snsFake.published).toHaveLength(1)
    expect(snsFake.published[0]).toMatchObject({
      topicArn: TOPIC,
      subject: expect.stringContaining(Job?.Id as string),
    })
    expect(JSON.parse(snsFake.published[0]?.message as string)).toMatchObject({
      state: 'COMPLETED',
      version: '2012-09-25',
      jobId: Job?.Id,
      pipelineId,
      input: { key: 'media/song.mp3' },
      outputs: SEED_PRESETS.map((presetId) =>
        expect.objectContaining({ presetId, status: 'Complete' }),
      ),
    })
    // Delivered, the server keeps nothing of it: no asset, no object in its own storage.
    await expectNoServerCopy()

    // The same keys again: ET never overwrites an output, it fails it with 3002.
    const wav = await s3.getObject(BUCKETS.output, 'media/song.mp3.wav')
    const { Job: again } = await alice.send(seedJob(pipelineId as string, 'media/song.mp3'))
    await expect(
      waitUntilJobComplete(
        { client: alice, maxWaitTime: 60, minDelay: 1, maxDelay: 1 },
        { Id: again?.Id },
      ),
    ).rejects.toThrow()
    const { Job: failed } = await alice.send(new ReadJobCommand({ Id: again?.Id }))
    expect(failed?.Status).toBe('Error')
    expect(failed?.Outputs?.[0]?.StatusDetail).toMatch(/^3002 /)
    expect(await s3.getObject(BUCKETS.output, 'media/song.mp3.wav')).toEqual(wav)
    await receiver.next(3)
    expect(JSON.parse(receiver.bodies[2]?.Message as string)).toMatchObject({
      state: 'ERROR',
      jobId: again?.Id,
      errorCode: 3002,
      messageDetails: expect.stringMatching(/^3002 /),
    })
    await expectNoServerCopy()
  })

  it('lists every system preset the catalog knows, with the seed three', async () => {
    const ids: string[] = []
    for await (const page of paginateListPresets({ client: alice }, {})) {
      ids.push(...(page.Presets ?? []).map((p) => p.Id as string))
    }
    expect(ids).toEqual(expect.arrayContaining(SEED_PRESETS))
    expect(new Set(ids).size).toBe(ids.length)
  })
})

describe('the seed flow on MediaConvert', () => {
  it('runs the three system presets through the MediaConvert engine, unchanged for the client', async () => {
    const client = etClient(converting.endpoint)
    const pipelineId = await createPipeline(client, 'Audio Files')
    const { Job } = await client.send(seedJob(pipelineId, 'mc/song.mp3'))
    await waitUntilJobComplete(
      { client, maxWaitTime: 60, minDelay: 1, maxDelay: 1 },
      { Id: Job?.Id },
    )
    const { Job: done } = await client.send(new ReadJobCommand({ Id: Job?.Id }))
    expect(done?.Outputs?.map((o) => [o.PresetId, o.Status])).toEqual(
      SEED_PRESETS.map((id) => [id, 'Complete']),
    )
    expect(mc.jobs.size).toBe(1)
    for (const [suffix, codec] of [
      ['wav', 'pcm_s16le'],
      ['flac', 'flac'],
      ['mp4', 'aac'],
    ]) {
      const bytes = await s3.getObject(BUCKETS.output, `mc/song.mp3.${suffix}`)
      const file = join(dir, `mc.${suffix}`)
      await writeFile(file, bytes as Buffer)
      expect((await probe(file)).streams[0]?.codec_name).toBe(codec)
    }
  })
})

describe('jobs that wait', () => {
  it('pages ListJobsByPipeline and ListJobsByStatus; cancels a Submitted job once', async () => {
    const client = etClient(waiting.endpoint)
    const pipelineId = await createPipeline(client, 'Waiting')
    const created: string[] = []
    for (let i = 0; i < 5; i++) {
      const { Job } = await client.send(seedJob(pipelineId, `wait/${i}`))
      created.push(Job?.Id as string)
    }
    const byPipeline: string[] = []
    for await (const page of paginateListJobsByPipeline({ client }, { PipelineId: pipelineId })) {
      expect(page.Jobs?.length).toBeLessThanOrEqual(2)
      byPipeline.push(...(page.Jobs ?? []).map((j) => j.Id as string))
    }
    expect(byPipeline).toEqual([...created].reverse())
    const ascending: string[] = []
    for await (const page of paginateListJobsByPipeline(
      { client },
      { PipelineId: pipelineId, Ascending: 'true' },
    )) {
      ascending.push(...(page.Jobs ?? []).map((j) => j.Id as string))
    }
    expect(ascending).toEqual(created)

    const sixth = await client.send(seedJob(pipelineId, 'wait/6')).catch((e) => e)
    expect(sixth.name).toBe('LimitExceededException')
    expect(sixth.$metadata.httpStatusCode).toBe(429)

    const core = async (id: string) =>
      held.repository.getJobByIdempotencyKey(`elastic-transcoder:${id}`, ALICE.owner)
    const canceledCore = await core(created[0] as string)
    expect(canceledCore).not.toBeNull()
    await client.send(new CancelJobCommand({ Id: created[0] }))
    const { Job } = await client.send(new ReadJobCommand({ Id: created[0] }))
    expect(Job?.Status).toBe('Canceled')
    // The server keeps no copy of a canceled job: its core asset, and the core job with it.
    expect(await held.repository.getAsset(canceledCore?.assetId as string)).toBeNull()
    expect(await core(created[0] as string)).toBeNull()
    const second = await client.send(new CancelJobCommand({ Id: created[0] })).catch((e) => e)
    expect(second.name).toBe('ResourceInUseException')
    expect(second.$metadata.httpStatusCode).toBe(409)

    const submitted: string[] = []
    for await (const page of paginateListJobsByStatus({ client }, { Status: 'Submitted' })) {
      submitted.push(...(page.Jobs ?? []).map((j) => j.Id as string))
    }
    expect(submitted).toEqual(created.slice(1).reverse())

    // Its asset deleted through the media API, a job is canceled with it (the service's event).
    await held.deleteAsset((await core(created[1] as string))?.assetId as string)
    const read = async (id: string) => (await client.send(new ReadJobCommand({ Id: id }))).Job
    expect((await read(created[1] as string))?.Status).toBe('Canceled')
    // Removed where this process sees no event (another process): ET reports it failed.
    await held.repository.deleteAsset((await core(created[2] as string))?.assetId as string)
    const removed = await read(created[2] as string)
    expect(removed?.Status).toBe('Error')
    expect(removed?.Outputs?.[0]?.StatusDetail).toMatch(/^9999 /)

    // Another process (a service of its own on the same repository) cancels a core job: no
    // event reaches this one, and no client reads the job; the periodic sync catches it.
    const other = createTranscoder({
      storage: s3Storage({ client: s3client, bucket: BUCKETS.internal }),
      engine: ffmpegEngine(),
      repository: held.repository,
      worker: false,
    })
    try {
      await other.cancel((await core(created[3] as string))?.id as string)
      await vi.waitFor(
        async () =>
          expect((await waitingStore.getJobById(created[3] as string))?.status).toBe('Canceled'),
        { timeout: 20_000, interval: 100 },
      )
    } finally {
      await other.close()
    }
  })
})

describe('access', () => {
  it('refuses a bad signature and an unknown key, and hides one owner from another', async () => {
    const forged = etClient(running.endpoint, {
      ...ALICE,
      secretAccessKey: 'not-alices-secret-at-all',
    })
    const refused = await forged.send(new ListPipelinesCommand({})).catch((e) => e)
    expect(refused.name).toBe('InvalidSignatureException')
    expect(refused.$metadata.httpStatusCode).toBe(403)
    const stranger = etClient(running.endpoint, {
      accessKeyId: 'AKIDSTRANGER0001',
      secretAccessKey: 'whatever-secret-value',
    })
    const unknown = await stranger.send(new ListPipelinesCommand({})).catch((e) => e)
    expect(unknown.name).toBe('UnrecognizedClientException')
    expect(unknown.$metadata.httpStatusCode).toBe(403)

    const mine = await createPipeline(alice, 'Private')
    const bob = etClient(running.endpoint, BOB)
    const hidden = await bob.send(new ReadPipelineCommand({ Id: mine })).catch((e) => e)
    expect(hidden.name).toBe('ResourceNotFoundException')
    expect(hidden.$metadata.httpStatusCode).toBe(404)
    const { Pipelines } = await bob.send(new ListPipelinesCommand({}))
    expect(Pipelines).toEqual([])
    const jobs = await bob.send(new ListJobsByPipelineCommand({ PipelineId: mine })).catch((e) => e)
    expect(jobs.name).toBe('ResourceNotFoundException')
    const job = await bob.send(seedJob(mine, 'bob/steal')).catch((e) => e)
    expect(job.name).toBe('ResourceNotFoundException')
  })

  it('caps the pipelines of each owner with a LimitExceededException', async () => {
    const capped = await startHeldApp({ maxPipelinesPerOwner: 2 })
    try {
      const mine = etClient(capped.endpoint, ALICE)
      await createPipeline(mine, 'One')
      await createPipeline(mine, 'Two')
      const third = await createPipeline(mine, 'Three').catch((e) => e)
      expect(third.name).toBe('LimitExceededException')
      expect(third.$metadata.httpStatusCode).toBe(429)
      const { Pipelines } = await mine.send(new ListPipelinesCommand({}))
      expect(Pipelines?.map((p) => p.Name)).toEqual(['One', 'Two'])
      // Bob's room is his own.
      expect(await createPipeline(etClient(capped.endpoint, BOB), 'Bob')).toMatch(/^\d{13}-/)
    } finally {
      await capped.app.close()
    }
  })

  it('publishes only to the SNS topics the server allows (its credentials, not the client)', async () => {
    const own = 'arn:aws:sns:us-east-1:123456789012:server-own-engine-events'
    const unlisted = await startHeldApp({})
    try {
      // No allow-list: every topic is refused, at creation and at update alike.
      const refused = await createPipeline(etClient(unlisted.endpoint, ALICE), 'Any', '', TOPIC)
        .then(() => null)
        .catch((e) => e)
      expect(refused?.name).toBe('ValidationException')
      expect(refused.message).toContain(TOPIC)
    } finally {
      await unlisted.app.close()
    }
    const guarded = await startHeldApp({ snsTopicAllowed: (arn) => arn === TOPIC })
    try {
      const mine = etClient(guarded.endpoint, ALICE)
      const refused = await createPipeline(mine, 'Hijack', '', own).catch((e) => e)
      expect(refused.name).toBe('ValidationException')
      expect(refused.message).toContain(own)
      const id = await createPipeline(mine, 'Fine', '', TOPIC)
      const update = await mine
        .send(
          new UpdatePipelineNotificationsCommand({
            Id: id,
            Notifications: { Progressing: '', Completed: own, Warning: '', Error: '' },
          }),
        )
        .catch((e) => e)
      expect(update.name).toBe('ValidationException')
      const { Pipelines } = await mine.send(new ListPipelinesCommand({}))
      expect(Pipelines?.map((p) => p.Notifications?.Completed)).toEqual([TOPIC])
    } finally {
      await guarded.app.close()
    }
  })

  it('re-checks the output bucket at delivery: a key narrowed since CreateJob gets nothing there', async () => {
    // One repository and queue: the job is taken by a process whose key reaches every bucket,
    // and run and delivered by one started later whose key no longer reaches the output.
    const repository = memoryRepository()
    const queue = inProcessQueue()
    const internal = s3Storage({ client: s3client, bucket: BUCKETS.internal })
    const buckets = {
      [BUCKETS.input]: s3Storage({ client: s3client, bucket: BUCKETS.input }),
      [BUCKETS.output]: s3Storage({ client: s3client, bucket: BUCKETS.output }),
    }
    const store = memoryEtStore()
    const services = { storage: internal, engine: ffmpegEngine(), repository, queue }
    const taking = createTranscoder({ ...services, worker: false })
    const before = await startEtApp({ service: taking, buckets, store, keys: [ALICE] })
    let jobId: string | undefined
    try {
      const alice = etClient(before.endpoint, ALICE)
      ;({
        Job: { Id: jobId } = {},
      } = await alice.send(seedJob(await createPipeline(alice, 'Narrowed'), 'narrowed/song')))
    } finally {
      await before.app.close()
    }
    const running = createTranscoder(services)
    const narrowed = { ...ALICE, buckets: [BUCKETS.input] }
    const after = await startEtApp({ service: running, buckets, store, keys: [narrowed] })
    try {
      const alice = etClient(after.endpoint, ALICE)
      await expect(
        waitUntilJobComplete(
          { client: alice, maxWaitTime: 60, minDelay: 1, maxDelay: 1 },
          { Id: jobId },
        ),
      ).rejects.toThrow()
      const { Job } = await alice.send(new ReadJobCommand({ Id: jobId }))
      expect(Job?.Status).toBe('Error')
      expect(Job?.Outputs?.[0]?.StatusDetail).toMatch(/^9999 .*no longer use it/)
      expect(await s3.getObject(BUCKETS.output, 'narrowed/song.wav')).toBeNull()
    } finally {
      await after.app.close()
      await running.close()
      await taking.close()
    }
  })

  it("keeps each key to its own buckets: another owner's bucket is not there for it", async () => {
    const scoped = await startHeldApp({
      keys: [ALICE, { ...BOB, buckets: [BUCKETS.output] }],
    })
    try {
      const bob = etClient(scoped.endpoint, BOB)
      const reading = await createPipeline(bob, 'Reads Alice').catch((e) => e)
      expect(reading.name).toBe('ValidationException')
      expect(reading.message).toContain(`"${BUCKETS.input}" is not one this endpoint`)
      const { Pipelines } = await bob.send(new ListPipelinesCommand({}))
      expect(Pipelines).toEqual([])
      // Alice, with every bucket, is unchanged.
      expect(await createPipeline(etClient(scoped.endpoint, ALICE), 'Mine')).toMatch(/^\d{13}-/)
    } finally {
      await scoped.app.close()
    }
  })

  it('holds the unfinished-jobs cap against a storm of concurrent CreateJob', async () => {
    const capped = await startHeldApp({ maxActiveJobsPerOwner: 2 })
    try {
      const mine = etClient(capped.endpoint, ALICE)
      const pipelineId = await createPipeline(mine, 'Storm')
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) => mine.send(seedJob(pipelineId, `storm/${i}`))),
      )
      const made = results.filter((r) => r.status === 'fulfilled')
      const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []))
      expect(made).toHaveLength(2)
      expect(refused.map((e) => e.name)).toEqual(Array(4).fill('LimitExceededException'))
    } finally {
      await capped.app.close()
    }
  })

  it('refuses what it cannot do with a ValidationException, leaving nothing behind', async () => {
    const pipelineId = await createPipeline(alice, 'Refusals')
    const before = await s3.listKeys(BUCKETS.internal)
    const command = seedJob(pipelineId, 'refused/x')
    command.input.Playlists = [{ Name: 'p', Format: 'HLSv3', OutputKeys: ['refused/x.wav'] }]
    const playlists = await alice.send(command).catch((e) => e)
    expect(playlists.name).toBe('ValidationException')
    expect(playlists.$metadata.httpStatusCode).toBe(400)
    const unknownPreset = await alice
      .send(
        new CreateJobCommand({
          PipelineId: pipelineId,
          Input: { Key: 'media/song.mp3' },
          Outputs: [{ Key: 'refused/y', PresetId: '1351620000001-999999' }],
        }),
      )
      .catch((e) => e)
    expect(unknownPreset.name).toBe('ValidationException')
    expect(unknownPreset.message).toContain('1351620000001-999999')
    const missingInput = await alice
      .send(
        new CreateJobCommand({
          PipelineId: pipelineId,
          Input: { Key: 'media/absent.mp3' },
          Outputs: [{ Key: 'refused/z', PresetId: SEED_PRESETS[0] }],
        }),
      )
      .catch((e) => e)
    expect(missingInput.name).toBe('ValidationException')
    const escaping = await alice
      .send(
        new CreateJobCommand({
          PipelineId: pipelineId,
          Input: { Key: 'media/song.mp3' },
          OutputKeyPrefix: '../',
          Outputs: [{ Key: 'escape.wav', PresetId: SEED_PRESETS[0] }],
        }),
      )
      .catch((e) => e)
    expect(escaping.name).toBe('ValidationException')
    expect(escaping.message).toContain('not a valid object key')
    expect(await s3.listKeys(BUCKETS.internal)).toEqual(before)
  })
})
