import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import {
  CreateJobCommand,
  CreatePipelineCommand,
  ElasticTranscoderClient,
  ListPipelinesCommand,
  waitUntilJobComplete,
} from '@aws-sdk/client-elastic-transcoder'
import { localStorage } from '@transcodekit/core'
import { makeTone, probe } from '@transcodekit/core/testing'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type SnsPublishFake, startSnsPublishFake } from '../../../test/fakes/sns-publish-fake.ts'
import { createServices, loadConfig, type Services } from '../src/config.ts'
import { buildServer } from '../src/server-app.ts'
import { configProblems } from './server-process.ts'

const SECRET = 'serve-secret-0123456789abcdef'
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

describe('ET_API_KEYS and ET_BUCKETS', () => {
  it('reads key pairs (owner = key id unless given) and buckets', () => {
    const config = loadConfig({
      ET_API_KEYS: `AKIDONE000000001:${SECRET}, AKIDTWO000000001:${SECRET}:AKIDONE000000001`,
      ET_BUCKETS: 'media=file:///srv/media, results=s3',
      S3_ENDPOINT: 'http://127.0.0.1:9000',
      S3_FORCE_PATH_STYLE: 'true',
      SNS_TOPIC_ARNS: 'arn:aws:sns:us-east-1:123456789012:engine-events',
      ET_SNS_TOPIC_ARNS: 'arn:aws:sns:us-east-1:123456789012:media-app-done',
    })
    expect(config.elasticTranscoder).toEqual({
      keys: [
        { accessKeyId: 'AKIDONE000000001', secretAccessKey: SECRET, owner: 'AKIDONE000000001' },
        { accessKeyId: 'AKIDTWO000000001', secretAccessKey: SECRET, owner: 'AKIDONE000000001' },
      ],
      buckets: [
        { name: 'media', kind: 'file', path: '/srv/media' },
        { name: 'results', kind: 's3' },
      ],
      s3: { endpoint: 'http://127.0.0.1:9000', region: 'us-east-1', forcePathStyle: true },
      snsRegion: 'us-east-1',
      // The only topics a pipeline may notify: the server publishes with its own credentials.
      snsTopics: ['arn:aws:sns:us-east-1:123456789012:media-app-done'],
    })
    expect(loadConfig({}).elasticTranscoder).toBeNull()
    const own = 'arn:aws:sns:us-east-1:123456789012:engine-events'
    expect(
      configProblems({
        ET_API_KEYS: `AKIDONE000000001:${SECRET}`,
        ET_BUCKETS: 'media=s3',
        SNS_TOPIC_ARNS: own,
        ET_SNS_TOPIC_ARNS: `${own},not-a-topic`,
      }),
    ).toEqual([
      `ET_SNS_TOPIC_ARNS: ${own} is in SNS_TOPIC_ARNS, the server's own event topics: a client may not publish there`,
      'ET_SNS_TOPIC_ARNS: "not-a-topic" is not an SNS topic ARN',
    ])
  })

  it('keeps a key to the buckets it names (ACCESS_KEY_ID:SECRET:OWNER:BUCKET+BUCKET)', () => {
    const config = loadConfig({
      ET_API_KEYS: `AKIDONE000000001:${SECRET}:alice:media+results, AKIDTWO000000001:${SECRET}:alice:media, AKIDTRE000000001:${SECRET}:bob:results`,
      ET_BUCKETS: 'media=file:///srv/media, results=file:///srv/results',
    })
    expect(config.elasticTranscoder?.keys).toEqual([
      {
        accessKeyId: 'AKIDONE000000001',
        secretAccessKey: SECRET,
        owner: 'alice',
        buckets: ['media', 'results'],
      },
      {
        accessKeyId: 'AKIDTWO000000001',
        secretAccessKey: SECRET,
        owner: 'alice',
        buckets: ['media'],
      },
      {
        accessKeyId: 'AKIDTRE000000001',
        secretAccessKey: SECRET,
        owner: 'bob',
        buckets: ['results'],
      },
    ])
    // A key of several owners' with no bucket list would reach the others' buckets.
    expect(
      configProblems({
        ET_API_KEYS: `AKIDONE000000001:${SECRET}:alice:media, AKIDTWO000000001:${SECRET}:bob`,
        ET_BUCKETS: 'media=file:///srv/media',
      }),
    ).toEqual([
      'ET_API_KEYS: AKIDTWO000000001 names no bucket: with keys of several owners, each one names its own (ACCESS_KEY_ID:SECRET:OWNER:BUCKET+BUCKET)',
    ])
    expect(
      configProblems({
        ET_API_KEYS: `AKIDONE000000001:${SECRET}:alice:media+elsewhere`,
        ET_BUCKETS: 'media=file:///srv/media',
      }),
    ).toEqual(['ET_API_KEYS: pair 1 names the bucket "elsewhere", which ET_BUCKETS does not have'])
  })

  it('names bad entries by position, never printing a secret', () => {
    const problems = configProblems({
      ET_API_KEYS: `AKIDONE000000001:short,bad-id:${SECRET},AKIDTWO000000001:${SECRET}:bad owner`,
      ET_BUCKETS: 'media=ftp://x,Bad_Name=s3,out=file://relative',
    })
    expect(problems).toEqual([
      expect.stringMatching(/^ET_API_KEYS: pair 1: the secret has at least 16/),
      expect.stringMatching(/^ET_API_KEYS: pair 2 must be ACCESS_KEY_ID:SECRET/),
      expect.stringMatching(/^ET_API_KEYS: pair 3: the owner/),
      'ET_BUCKETS: media=ftp://x: a bucket is file:///path or s3',
      expect.stringMatching(/^ET_BUCKETS: "Bad_Name=s3" must be/),
      expect.stringMatching(/^ET_BUCKETS: out=file:\/\/relative is not a file:\/\/\/ URL/),
      'ET_API_KEYS is set: ET_BUCKETS must name at least one bucket',
    ])
    expect(problems.join('\n')).not.toContain(SECRET)
    expect(configProblems({ ET_BUCKETS: 'media=s3' })).toEqual([
      'ET_BUCKETS is set but ET_API_KEYS is not',
    ])
  })

  it("refuses a bucket that is the server's own storage, where every owner's media lies", () => {
    const keys = `AKIDONE000000001:${SECRET}`
    expect(
      configProblems({
        ET_API_KEYS: keys,
        ET_BUCKETS: 'media=s3',
        STORAGE: 's3',
        S3_BUCKET: 'media',
      }),
    ).toEqual([expect.stringMatching(/^ET_BUCKETS: media is S3_BUCKET, the server's own storage/)])
    for (const path of ['/srv/tk', '/srv/tk/files', '/srv/tk/files/in', '/srv']) {
      expect(
        configProblems({
          ET_API_KEYS: keys,
          ET_BUCKETS: `media=file://${path}`,
          DATA_DIR: '/srv/tk',
        }),
      ).toEqual([expect.stringMatching(/^ET_BUCKETS: media .* overlaps DATA_DIR/)])
    }
    expect(
      configProblems({
        ET_API_KEYS: keys,
        ET_BUCKETS: 'media=file:///srv/media',
        DATA_DIR: '/srv/tk',
      }),
    ).toEqual([])
  })

  it('refuses folder buckets inside one another: a key given one would reach the other', () => {
    const keys = `AKIDONE000000001:${SECRET}:alice:outer+inner`
    for (const buckets of [
      'outer=file:///srv/media,inner=file:///srv/media/alice',
      'inner=file:///srv/media/alice,outer=file:///srv/media',
      'outer=file:///srv/media,inner=file:///srv/media',
    ]) {
      expect(
        configProblems({ ET_API_KEYS: keys, ET_BUCKETS: buckets, DATA_DIR: '/srv/tk' }),
      ).toEqual([expect.stringMatching(/^ET_BUCKETS: \w+ \(.*\) and \w+ \(.*\) overlap/)])
    }
    expect(
      configProblems({
        ET_API_KEYS: keys,
        ET_BUCKETS: 'outer=file:///srv/media,inner=file:///srv/media-alice',
        DATA_DIR: '/srv/tk',
      }),
    ).toEqual([])
  })
})

describe('transcodekit serve with the Elastic Transcoder API', () => {
  let dir: string
  let services: Services
  let app: FastifyInstance
  let client: ElasticTranscoderClient
  const schema = `tk_et_serve_${randomBytes(4).toString('hex')}`
  const queueSchema = `${schema}_queue`
  let sns: SnsPublishFake
  // The SNS client of serve is configured the AWS way: its endpoint and credentials from the
  // environment of the process (this test file's own worker).
  const SNS_ENV = {
    AWS_ENDPOINT_URL_SNS: '',
    AWS_ACCESS_KEY_ID: 'AKIAFAKE',
    AWS_SECRET_ACCESS_KEY: 'fake',
  }
  const saved: Record<string, string | undefined> = {}

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tk-et-serve-'))
    sns = await startSnsPublishFake()
    SNS_ENV.AWS_ENDPOINT_URL_SNS = sns.endpoint
    for (const [name, value] of Object.entries(SNS_ENV)) {
      saved[name] = process.env[name]
      process.env[name] = value
    }
    const config = loadConfig({
      DATA_DIR: join(dir, 'data'),
      DATABASE_URL,
      DATABASE_SCHEMA: schema,
      QUEUE_SCHEMA: queueSchema,
      ET_API_KEYS: `AKIDSERVE0000001:${SECRET}:alice`,
      ET_BUCKETS: `media=${pathToFileURL(join(dir, 'in')).href},results=${pathToFileURL(join(dir, 'out')).href}`,
      ET_SNS_TOPIC_ARNS: 'arn:aws:sns:us-east-1:123456789012:done',
    })
    services = await createServices(config)
    app = await buildServer(config, services, { logger: false })
    await app.listen({ port: 0, host: '127.0.0.1' })
    client = new ElasticTranscoderClient({
      endpoint: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDSERVE0000001', secretAccessKey: SECRET },
      maxAttempts: 1,
    })
  })

  afterAll(async () => {
    client?.destroy()
    await app?.close()
    const db = services?.database?.db
    if (db) {
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
      await sql`drop schema if exists ${sql.id(queueSchema)} cascade`.execute(db)
    }
    await services?.close()
    await sns?.close()
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('refuses a pipeline notifying a topic ET_SNS_TOPIC_ARNS does not list', async () => {
    const other = 'arn:aws:sns:us-east-1:123456789012:someone-elses'
    const refused = await client
      .send(
        new CreatePipelineCommand({
          Name: 'Elsewhere',
          InputBucket: 'media',
          OutputBucket: 'results',
          Role: 'arn:aws:iam::123456789012:role/Elastic_Transcoder_Default_Role',
          Notifications: { Progressing: '', Completed: other, Warning: '', Error: '' },
        }),
      )
      .then(() => null)
      .catch((error) => error)
    expect(refused?.name).toBe('ValidationException')
    expect(refused.message).toContain(other)
  })

  it('runs a job from one folder bucket to another, its pipeline kept in PostgreSQL', async () => {
    const tone = await makeTone(join(dir, 'tone.mp3'), { seconds: 2, format: 'mp3' })
    await localStorage({ root: join(dir, 'in') }).put('uploads/tone.mp3', createReadStream(tone))
    const { Pipeline } = await client.send(
      new CreatePipelineCommand({
        Name: 'Audio Files',
        InputBucket: 'media',
        OutputBucket: 'results',
        Role: 'arn:aws:iam::123456789012:role/Elastic_Transcoder_Default_Role',
        Notifications: {
          Progressing: '',
          Completed: 'arn:aws:sns:us-east-1:123456789012:done',
          Warning: '',
          Error: '',
        },
      }),
    )
    const { Job } = await client.send(
      new CreateJobCommand({
        PipelineId: Pipeline?.Id,
        Input: { Key: 'uploads/tone.mp3', Container: 'auto' },
        OutputKeyPrefix: 'done/',
        Outputs: [{ Key: 'tone.flac', PresetId: '1351620000001-300110' }],
        UserMetadata: { entry: '42' },
      }),
    )
    await waitUntilJobComplete(
      { client, maxWaitTime: 60, minDelay: 1, maxDelay: 1 },
      { Id: Job?.Id },
    )
    const { body } = await localStorage({ root: join(dir, 'out') }).get('done/tone.flac')
    const file = join(dir, 'tone.flac')
    await writeFile(file, body)
    expect((await probe(file)).streams[0]?.codec_name).toBe('flac')
    await sns.next(1)
    expect(sns.published[0]?.topicArn).toBe('arn:aws:sns:us-east-1:123456789012:done')
    expect(JSON.parse(sns.published[0]?.message ?? '{}')).toMatchObject({
      state: 'COMPLETED',
      jobId: Job?.Id,
      userMetadata: { entry: '42' },
      outputs: [{ presetId: '1351620000001-300110', key: 'tone.flac', status: 'Complete' }],
    })

    const { rows } = await sql<{ name: string; owner: string }>`
      select name, owner from ${sql.id(schema, 'et_pipelines')}`.execute(services.database!.db)
    expect(rows).toEqual([{ name: 'Audio Files', owner: 'alice' }])
    const { Pipelines } = await client.send(new ListPipelinesCommand({}))
    expect(Pipelines?.map((p) => p.Id)).toEqual([Pipeline?.Id])
    // Beside the media API, not inside it: the app's OpenAPI document does not list them.
    const openapi = (await app.inject({ url: '/openapi.json' })).json()
    expect(JSON.stringify(openapi.paths)).not.toContain('2012-09-25')
  })
})
