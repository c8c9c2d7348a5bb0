import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  CreateJobCommand,
  CreatePipelineCommand,
  CreatePresetCommand,
  DeletePresetCommand,
  type ElasticTranscoderClient,
  paginateListPresets,
  ReadPresetCommand,
  waitUntilJobComplete,
} from '@aws-sdk/client-elastic-transcoder'
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { s3Storage } from '@transcodekit/aws'
import {
  createTranscoder,
  ffmpegEngine,
  memoryRepository,
  type TranscodeService,
} from '@transcodekit/core'
import { makeTone, probe } from '@transcodekit/core/testing'
import { kyselyRepository, migrateToLatest, openDatabase } from '@transcodekit/kysely'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type S3rverHandle, startS3rver } from '../../../test/fakes/s3rver-server.ts'
import { s3rverClient } from '../../aws/test/aws-clients.ts'
import { kyselyEtStore } from '../src/kysely.ts'
import { BOB, etClient, startEtApp } from './et-test-app.ts'

// Custom presets on an unchanged @aws-sdk/client-elastic-transcoder, the service and the ET
// store both on PostgreSQL (one schema, dropped after): what CreatePreset makes survives in
// the database, and a job runs from the copy its output keeps.
const BUCKETS = { input: 'tk-etp-input', output: 'tk-etp-output', internal: 'tk-etp-internal' }
const schema = `tk_etp_${randomBytes(5).toString('hex')}`
const opened = openDatabase({
  url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  maxConnections: 4,
})

let dir: string
let s3: S3rverHandle
let s3client: S3Client
let service: TranscodeService
let running: { app: FastifyInstance; endpoint: string }
let alice: ElasticTranscoderClient
let bob: ElasticTranscoderClient

beforeAll(async () => {
  const { db } = await opened
  await migrateToLatest(db, { schema })
  dir = await mkdtemp(join(tmpdir(), 'tk-et-presets-'))
  s3 = await startS3rver({ buckets: Object.values(BUCKETS) })
  s3client = s3rverClient(s3.endpoint)
  service = createTranscoder({
    storage: s3Storage({ client: s3client, bucket: BUCKETS.internal }),
    engine: ffmpegEngine(),
    repository: kyselyRepository({ db, schema }),
  })
  running = await startEtApp({
    service,
    buckets: {
      [BUCKETS.input]: s3Storage({ client: s3client, bucket: BUCKETS.input }),
      [BUCKETS.output]: s3Storage({ client: s3client, bucket: BUCKETS.output }),
    },
    store: kyselyEtStore({ db, schema }),
    maxPresetsPerOwner: 3,
    // Small pages: ListPresets pages across the system presets and the custom ones.
    pageSize: 5,
  })
  alice = etClient(running.endpoint)
  bob = etClient(running.endpoint, BOB)
  const song = await readFile(await makeTone(join(dir, 'song.mp3'), { seconds: 2, format: 'mp3' }))
  await s3client.send(
    new PutObjectCommand({ Bucket: BUCKETS.input, Key: 'media/song.mp3', Body: song }),
  )
})

afterAll(async () => {
  await running?.app.close()
  await service?.close()
  s3client?.destroy()
  await s3?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
  const { db, close } = await opened
  await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
  await close()
})

async function pipelineOf(client: ElasticTranscoderClient): Promise<string> {
  const { Pipeline } = await client.send(
    new CreatePipelineCommand({
      Name: 'Custom presets',
      InputBucket: BUCKETS.input,
      OutputBucket: BUCKETS.output,
      Role: 'arn:aws:iam::123456789012:role/Elastic_Transcoder_Default_Role',
    }),
  )
  return Pipeline?.Id as string
}

async function listedIds(client: ElasticTranscoderClient): Promise<string[]> {
  const ids: string[] = []
  let pages = 0
  for await (const page of paginateListPresets({ client }, {})) {
    pages++
    ids.push(...(page.Presets ?? []).map((p) => p.Id as string))
  }
  // Every preset once, in id order, over several pages of 5.
  expect(pages).toBeGreaterThan(1)
  expect(ids).toEqual([...new Set(ids)].sort())
  return ids
}

async function deleteAll(client: ElasticTranscoderClient, ids: string[]): Promise<void> {
  for (const Id of ids) await client.send(new DeletePresetCommand({ Id }))
}

describe('custom presets', () => {
  it('makes mp3 and flac presets, runs a job with them, and the files are what was asked', async () => {
    const { Preset: mp3 } = await alice.send(
      new CreatePresetCommand({
        Name: 'Voice mp3',
        Description: 'Mono speech',
        Container: 'mp3',
        Audio: { Codec: 'mp3', SampleRate: '22050', BitRate: '64', Channels: '1' },
      }),
    )
    expect(mp3).toMatchObject({
      Id: expect.stringMatching(/^\d{13}-[a-z0-9]{6}$/),
      Type: 'Custom',
      Name: 'Voice mp3',
      Container: 'mp3',
      Audio: { Codec: 'mp3', SampleRate: '22050', BitRate: '64', Channels: '1' },
    })
    const { Preset: flac } = await alice.send(
      new CreatePresetCommand({
        Name: 'Archive flac',
        Container: 'flac',
        Audio: { Codec: 'flac', SampleRate: '48000', Channels: '1' },
      }),
    )
    expect(flac?.Id).not.toBe(mp3?.Id)
    const { Preset: read } = await alice.send(new ReadPresetCommand({ Id: mp3?.Id }))
    expect(read).toEqual(mp3)
    const listed = await listedIds(alice)
    expect(listed).toEqual(expect.arrayContaining([mp3?.Id, flac?.Id, '1351620000001-300300']))
    // The custom ones, made now, sort after every system preset.
    expect(listed.slice(-2).sort()).toEqual([mp3?.Id, flac?.Id].sort())

    const pipelineId = await pipelineOf(alice)
    const { Job } = await alice.send(
      new CreateJobCommand({
        PipelineId: pipelineId,
        Input: { Key: 'media/song.mp3' },
        OutputKeyPrefix: 'custom/',
        Outputs: [
          { Key: 'voice.mp3', PresetId: mp3?.Id },
          { Key: 'archive.flac', PresetId: flac?.Id },
        ],
      }),
    )
    await waitUntilJobComplete(
      { client: alice, maxWaitTime: 60, minDelay: 1, maxDelay: 1 },
      { Id: Job?.Id },
    )
    const expected = [
      ['custom/voice.mp3', 'mp3', 22_050],
      ['custom/archive.flac', 'flac', 48_000],
    ] as const
    for (const [key, codec, sampleRate] of expected) {
      const file = join(dir, key.replaceAll('/', '_'))
      await writeFile(file, (await s3.getObject(BUCKETS.output, key)) as Buffer)
      const audio = (await probe(file)).streams.find((s) => s.codec_type === 'audio')
      expect(audio).toMatchObject({ codec_name: codec, channels: 1 })
      expect(Number(audio?.sample_rate)).toBe(sampleRate)
    }
    // Deleted once the job is over: gone for ReadPreset and ListPresets.
    await deleteAll(alice, [mp3?.Id as string, flac?.Id as string])
    const gone = await alice.send(new ReadPresetCommand({ Id: mp3?.Id })).catch((e) => e)
    expect(gone.name).toBe('ResourceNotFoundException')
    expect(await listedIds(alice)).not.toContain(flac?.Id)
  })

  it('keeps a preset that an unfinished job uses (ResourceInUseException)', async () => {
    // A service that takes jobs but runs none: the job stays Submitted.
    const held = createTranscoder({
      storage: s3Storage({ client: s3client, bucket: BUCKETS.internal }),
      engine: ffmpegEngine(),
      repository: memoryRepository(),
      worker: false,
    })
    const waiting = await startEtApp({
      service: held,
      buckets: {
        [BUCKETS.input]: s3Storage({ client: s3client, bucket: BUCKETS.input }),
        [BUCKETS.output]: s3Storage({ client: s3client, bucket: BUCKETS.output }),
      },
    })
    try {
      const client = etClient(waiting.endpoint)
      const { Preset } = await client.send(
        new CreatePresetCommand({ Name: 'Held', Container: 'flac', Audio: { Codec: 'flac' } }),
      )
      const { Job } = await client.send(
        new CreateJobCommand({
          PipelineId: await pipelineOf(client),
          Input: { Key: 'media/song.mp3' },
          Outputs: [{ Key: 'held/song.flac', PresetId: Preset?.Id }],
        }),
      )
      expect(Job?.Status).toBe('Submitted')
      const inUse = await client.send(new DeletePresetCommand({ Id: Preset?.Id })).catch((e) => e)
      expect(inUse.name).toBe('ResourceInUseException')
      expect(inUse.$metadata.httpStatusCode).toBe(409)
      expect((await client.send(new ReadPresetCommand({ Id: Preset?.Id }))).Preset?.Id).toBe(
        Preset?.Id,
      )
      client.destroy()
    } finally {
      await waiting.app.close()
      await held.close()
    }
  })

  it('refuses what the preset schema cannot express with a ValidationException, leaving nothing', async () => {
    const before = await listedIds(alice)
    const refusals = [
      [{ Container: 'mp4', Video: { Codec: 'mpeg2' } }, 'Video:Codec'],
      [{ Container: 'ts' }, 'Container'],
      [{ Container: 'mp3', Audio: { Codec: 'AAC', BitRate: '128' } }, 'Audio:Codec'],
      [{ Container: 'mp3', Audio: { Codec: 'mp3', BitRate: '900' } }, 'Audio:BitRate'],
      [{ Container: 'flac', Audio: { Codec: 'flac', Channels: '0' } }, 'Audio:Channels'],
      [{ Container: 'wav', Audio: { Codec: 'pcm', CodecOptions: { BitDepth: '24' } } }, 'BitDepth'],
      [
        {
          Container: 'mp4',
          Audio: { Codec: 'AAC', BitRate: '128' },
          Video: { Codec: 'H.264', SizingPolicy: 'Stretch' },
        },
        'Video:SizingPolicy',
      ],
      [
        {
          Container: 'mp4',
          Audio: { Codec: 'AAC', BitRate: '128' },
          Thumbnails: { Format: 'png', Interval: '60' },
        },
        'Thumbnails',
      ],
    ] as const
    for (const [fields, field] of refusals) {
      const error = await alice
        .send(
          new CreatePresetCommand({
            Name: 'Refused',
            Audio: { Codec: 'AAC', BitRate: '128' },
            ...(fields as object),
          } as never),
        )
        .catch((e) => e)
      expect(error.name, field).toBe('ValidationException')
      expect(error.$metadata.httpStatusCode).toBe(400)
      expect(error.message).toContain(field)
    }
    expect(await listedIds(alice)).toEqual(before)
  })

  it('maps an mp4 H.264 + AAC preset, sizes and bit rates included', async () => {
    const { Preset } = await alice.send(
      new CreatePresetCommand({
        Name: 'Small mp4',
        Container: 'mp4',
        Audio: { Codec: 'AAC', SampleRate: '44100', BitRate: '96', Channels: '2' },
        Video: {
          Codec: 'H.264',
          CodecOptions: { Profile: 'baseline' },
          BitRate: '600',
          MaxWidth: '640',
          MaxHeight: '360',
          FrameRate: 'auto',
          SizingPolicy: 'ShrinkToFit',
          PaddingPolicy: 'NoPad',
        },
      }),
    )
    expect(Preset?.Video).toMatchObject({ Codec: 'H.264', MaxWidth: '640', BitRate: '600' })
    await deleteAll(alice, [Preset?.Id as string])
  })

  it('keeps a preset to its owner: another cannot read, list, use or delete it', async () => {
    const { Preset } = await alice.send(
      new CreatePresetCommand({
        Name: 'Alice only',
        Container: 'flac',
        Audio: { Codec: 'flac' },
      }),
    )
    const id = Preset?.Id as string
    const read = await bob.send(new ReadPresetCommand({ Id: id })).catch((e) => e)
    expect(read.name).toBe('ResourceNotFoundException')
    expect(await listedIds(bob)).not.toContain(id)
    const deleted = await bob.send(new DeletePresetCommand({ Id: id })).catch((e) => e)
    expect(deleted.name).toBe('ResourceNotFoundException')
    const used = await bob
      .send(
        new CreateJobCommand({
          PipelineId: await pipelineOf(bob),
          Input: { Key: 'media/song.mp3' },
          Outputs: [{ Key: 'bob/stolen.flac', PresetId: id }],
        }),
      )
      .catch((e) => e)
    expect(used.name).toBe('ValidationException')
    expect(used.message).toContain(id)
    expect(await s3.listKeys(BUCKETS.output, 'bob/')).toEqual([])
    // Still Alice's, until she deletes it: then it is gone for her too.
    expect((await alice.send(new ReadPresetCommand({ Id: id }))).Preset?.Id).toBe(id)
    await alice.send(new DeletePresetCommand({ Id: id }))
    const gone = await alice.send(new ReadPresetCommand({ Id: id })).catch((e) => e)
    expect(gone.name).toBe('ResourceNotFoundException')
    expect(gone.$metadata.httpStatusCode).toBe(404)
  })

  it('refuses to delete a system preset, and caps the custom presets of each owner', async () => {
    const system = await alice
      .send(new DeletePresetCommand({ Id: '1351620000001-300300' }))
      .catch((e) => e)
    expect(system.name).toBe('AccessDeniedException')
    const make = (client: ElasticTranscoderClient) =>
      client.send(
        new CreatePresetCommand({ Name: 'Cap', Container: 'wav', Audio: { Codec: 'pcm' } }),
      )
    const made = [await make(alice), await make(alice), await make(alice)]
    const over = await make(alice).catch((e) => e)
    expect(over.name).toBe('LimitExceededException')
    // Bob's room is his own.
    const bobs = await make(bob)
    await deleteAll(
      alice,
      made.map((m) => m.Preset?.Id as string),
    )
    await deleteAll(bob, [bobs.Preset?.Id as string])
  })
})
