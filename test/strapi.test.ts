import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTone, makeVideo, probe } from '../packages/core/src/testing/index.ts'
import { type S3rverHandle, startS3rver } from './fakes/s3rver-server.ts'
import {
  APP_DIR,
  adminSql,
  appRequire,
  bootStrapi,
  type FileEntry,
  PG_URL,
  type PluginService,
  type RecordedOutput,
  STRAPI_INSTALLED,
  type StrapiCore,
  strapiEnv,
  type TranscodeRecord,
} from './support/strapi-app.ts'

// The real Strapi 5 app of examples/strapi, booted in this process (no admin build), on a
// PostgreSQL database of its own, with the transcodekit plugin as config/plugins.ts sets it up.

const SKIP_REASON = 'examples/strapi is not installed: run examples/strapi/install.sh'

if (!STRAPI_INSTALLED && process.env.CI) {
  describe('Strapi example', () => {
    it('is installed', () => {
      throw new Error(`${SKIP_REASON} (CI must run it before the tests)`)
    })
  })
} else if (!STRAPI_INSTALLED) {
  console.warn(`[strapi.test.ts] skipped: ${SKIP_REASON}`)
}

/** The parts of the booted Strapi instance the test touches. */
interface StrapiApp extends StrapiCore {
  db: {
    query(uid: string): { findOne(params: unknown): Promise<Record<string, unknown> | null> }
    lifecycles: {
      run(action: string, uid: string, properties: { result: unknown }): Promise<unknown>
    }
  }
  service(uid: string): { create(params: unknown): Promise<{ accessKey: string }> }
  plugin(name: string): { service(name: string): PluginService }
}

/**
 * Where the app keeps its uploads and transcodes, and how the test takes transcoding down.
 * `setUp` runs before Strapi boots and returns the environment it boots with.
 */
interface Profile {
  name: string
  /** Jobs are kept in PostgreSQL: they outlive the Strapi process. */
  durable: boolean
  setUp(work: string, admin: (sql: string) => Promise<void>): Promise<Record<string, string>>
  tearDown(admin: (sql: string) => Promise<void>): Promise<void>
  /** Stored objects (originals and outputs) of one transcodekit asset. */
  storedUnder(assetId: string): Promise<string[]>
  /** The asset id in an output URL. */
  assetOf(url: string): string
  /** Makes every submission fail, as an outage would; returns what brings it back. */
  takeDown(): Promise<() => Promise<void>>
}

/** Strapi's local upload provider; transcodekit on local disk and in Strapi's own database. */
function localProfile(): Profile {
  let dataDir = ''
  return {
    name: "local upload provider, local storage, Strapi's own database",
    durable: false,
    async setUp(work) {
      const publicDir = join(work, 'public')
      dataDir = join(publicDir, 'uploads', 'transcodekit')
      await mkdir(join(publicDir, 'uploads'), { recursive: true })
      return { PUBLIC_DIR: publicDir, UPLOAD_PROVIDER: 'local' }
    },
    async tearDown() {},
    storedUnder: (assetId) => filesUnder(join(dataDir, assetId)),
    assetOf: (url) => url.split('/')[3]!,
    async takeDown() {
      // The transcoding storage goes away: a file where its folder was, so every write fails.
      const aside = `${dataDir}.aside`
      await rename(dataDir, aside)
      await writeFile(dataDir, 'storage unavailable')
      return async () => {
        await rm(dataDir)
        await rename(aside, dataDir)
      }
    },
  }
}

/**
 * Strapi's own S3 upload provider (@strapi/provider-upload-aws-s3, private bucket, so URLs are
 * signed) against s3rver; transcodekit on S3 (@transcodekit/aws) and on PostgreSQL
 * (@transcodekit/kysely) in a database of its own.
 */
function s3Profile(): Profile {
  const bucket = 'strapi-media'
  const database = `tk_test_${randomBytes(4).toString('hex')}`
  let s3: S3rverHandle | null = null
  let admin: (sql: string) => Promise<void> = async () => {}
  return {
    name: 'S3 upload provider (s3rver), S3 storage, PostgreSQL repository',
    durable: true,
    async setUp(work, adminSql) {
      admin = adminSql
      s3 = await startS3rver({ buckets: [bucket] })
      await admin(`CREATE DATABASE ${database}`)
      return {
        PUBLIC_DIR: join(work, 'public'),
        UPLOAD_PROVIDER: 'aws-s3',
        AWS_ACCESS_KEY_ID: 'S3RVER',
        AWS_ACCESS_SECRET: 'S3RVER',
        AWS_REGION: 'us-east-1',
        AWS_ENDPOINT: s3.endpoint,
        AWS_FORCE_PATH_STYLE: 'true',
        AWS_BUCKET: bucket,
        AWS_ACL: 'private',
        // s3rver stores aws-chunked framing as data for streamed PutObject (FIELD-NOTES).
        AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
        TRANSCODEKIT_S3_BUCKET: bucket,
        TRANSCODEKIT_S3_PREFIX: 'transcodekit/',
        TRANSCODEKIT_DATABASE_URL: `${PG_URL}/${database}`,
      }
    },
    async tearDown() {
      await s3?.close()
      await admin(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => {})
    },
    storedUnder: (assetId) => s3!.listKeys(bucket, `transcodekit/${assetId}/`),
    assetOf: (url) => decodeURIComponent(new URL(url).pathname).split('/')[3]!,
    async takeDown() {
      // The transcodekit database refuses every connection, and the open ones are cut.
      await admin(`ALTER DATABASE ${database} ALLOW_CONNECTIONS false`)
      await admin(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${database}' AND pid <> pg_backend_pid()`,
      )
      return () => admin(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`)
    },
  }
}

async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries
    .filter((e) => e.isFile() && !join(e.parentPath, e.name).slice(root.length).includes('/.'))
    .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
}

describe.skipIf(!STRAPI_INSTALLED)('Strapi example install', () => {
  it('has the @transcodekit packages from the packed tarballs (install.sh), built, never linked', async () => {
    for (const name of ['core', 'strapi', 'kysely', 'aws']) {
      const manifestPath = appRequire.resolve(`@transcodekit/${name}/package.json`)
      const real = await realpath(manifestPath)
      expect(real, name).toContain(join(APP_DIR, 'node_modules'))
      expect(real, name).not.toContain(resolve(import.meta.dirname, '../packages'))
      const manifest = JSON.parse(await readFile(real, 'utf8'))
      expect(manifest.exports['.'].default, name).toBe('./dist/index.js')
      expect(existsSync(join(real, '../dist/index.js')), name).toBe(true)
      expect(existsSync(join(real, '../test')), name).toBe(false)
    }
  })
})

for (const profile of [localProfile(), s3Profile()]) {
  describe.skipIf(!STRAPI_INSTALLED)(
    `Strapi example app with @transcodekit/strapi (${profile.name})`,
    () => {
      defineSuite(profile)
    },
  )
}

function defineSuite(profile: Profile): void {
  const database = `strapi_test_${randomBytes(4).toString('hex')}`
  let work: string
  let strapi: StrapiApp
  let base: string
  let token: string
  let shutdown: () => Promise<void>
  const warnings: string[] = []

  async function upload(
    path: string,
    name: string,
    type: string,
  ): Promise<{ status: number; file: FileEntry }> {
    const form = new FormData()
    const bytes = await import('node:fs/promises').then((fs) => fs.readFile(path))
    form.append('files', new Blob([bytes], { type }), name)
    const response = await fetch(`${base}/api/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    })
    const body = (await response.json()) as FileEntry[]
    return { status: response.status, file: body[0]! }
  }

  async function entry(id: number): Promise<{ status: number; file: FileEntry }> {
    const response = await fetch(`${base}/api/upload/files/${id}`, {
      headers: { authorization: `Bearer ${token}` },
    })
    return { status: response.status, file: (await response.json()) as FileEntry }
  }

  /** Polls the REST API until the entry's transcoding has ended (bounded). */
  async function finished(id: number, timeoutMs = 60_000): Promise<TranscodeRecord> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const record = (await entry(id)).file.provider_metadata?.transcodekit
      if (record && ['complete', 'error', 'canceled'].includes(record.state)) return record
      if (Date.now() > deadline)
        throw new Error(`file ${id}: transcoding did not end (${JSON.stringify(record)})`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  /** Downloads an output through Strapi and returns ffprobe's view of it. */
  async function fetchOutput(output: RecordedOutput) {
    const response = await fetch(new URL(output.url!, base))
    expect(response.status, output.url ?? '').toBe(200)
    const bytes = Buffer.from(await response.arrayBuffer())
    expect(bytes.length).toBe(output.size)
    const path = join(work, `download-${randomBytes(4).toString('hex')}`)
    await writeFile(path, bytes)
    return probe(path)
  }

  async function jobsFor(id: number) {
    const jobs = await strapi
      .plugin('transcodekit')
      .service('transcoder')
      .service.listJobs({ limit: 100 })
    return jobs.items.filter((job) => job.idempotencyKey === `strapi:file:${id}`)
  }

  /** Compiles the app (TypeScript, once per file) and boots it on a free port. */
  async function boot(): Promise<void> {
    const booted = await bootStrapi<StrapiApp>({ warnings })
    ;({ strapi, base, shutdown } = booted)
    console.info(`[strapi.test.ts] Strapi compiled and booted in ${booted.bootMs} ms`)
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'tk-strapi-'))
    await adminSql(`CREATE DATABASE ${database}`)
    const profileEnv = await profile.setUp(work, adminSql)
    for (const key of Object.keys(process.env)) {
      if (key.startsWith('TRANSCODEKIT_') || key.startsWith('AWS_')) delete process.env[key]
    }
    Object.assign(process.env, strapiEnv(), {
      DATABASE_URL: `${PG_URL}/${database}`,
      TRANSCODEKIT_AUDIO_PRESETS: 'wav,flac,aac-256k',
      TRANSCODEKIT_VIDEO_PRESETS: 'mp4-480p,thumbnail',
      TRANSCODEKIT_RETRY_INITIAL_MS: '200',
      TRANSCODEKIT_RETRY_MAX_MS: '1000',
      ...profileEnv,
    })
    await boot()
    const created = await strapi
      .service('admin::api-token')
      .create({ name: 'transcodekit-test', type: 'full-access', lifespan: null })
    token = created.accessKey
  })

  afterAll(async () => {
    if (shutdown) await shutdown()
    await adminSql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => {})
    await profile.tearDown(adminSql)
    if (work) await rm(work, { recursive: true, force: true })
  })

  it('transcodes an uploaded mp3 and records the outputs on its entry, each one served and probed', async () => {
    const mp3 = await makeTone(join(work, 'song.mp3'), { seconds: 2, format: 'mp3' })
    const { status, file } = await upload(mp3, 'song.mp3', 'audio/mpeg')
    expect(status).toBe(201)
    expect(file.mime).toBe('audio/mpeg')

    const record = await finished(file.id)
    expect(record.state).toBe('complete')
    expect(record.error).toBeNull()
    expect(record.outputs.map((o) => o.preset).sort()).toEqual(['aac-256k', 'flac', 'wav'])
    const expected: Record<string, { mime: string; codec: string }> = {
      wav: { mime: 'audio/wav', codec: 'pcm_s16le' },
      flac: { mime: 'audio/flac', codec: 'flac' },
      'aac-256k': { mime: 'audio/mp4', codec: 'aac' },
    }
    for (const output of record.outputs) {
      expect(output.state).toBe('complete')
      expect(output.mime).toBe(expected[output.preset]!.mime)
      expect(output.url).toContain('transcodekit/')
      const probed = await fetchOutput(output)
      expect(probed.streams.find((s) => s.codec_type === 'audio')?.codec_name).toBe(
        expected[output.preset]!.codec,
      )
      expect(Number(probed.format.duration)).toBeCloseTo(2, 0)
      expect(output.durationSec ?? Number(probed.format.duration)).toBeCloseTo(2, 0)
    }
    // Strapi's own fields are untouched.
    const { file: after } = await entry(file.id)
    // (A private bucket's URLs are signed anew on each read: compare without the signature.)
    expect(after.url.split('?')[0]).toBe(file.url.split('?')[0])
    expect(after.mime).toBe('audio/mpeg')
    expect(await jobsFor(file.id)).toHaveLength(1)
  })

  it('transcodes an uploaded mp4 to a 480p mp4 and a thumbnail', async () => {
    const mp4 = await makeVideo(join(work, 'clip.mp4'), { seconds: 1, width: 320, height: 240 })
    const { status, file } = await upload(mp4, 'clip.mp4', 'video/mp4')
    expect(status).toBe(201)
    const record = await finished(file.id)
    expect(record.state).toBe('complete')
    const video = record.outputs.find((o) => o.preset === 'mp4-480p')!
    expect(video.mime).toBe('video/mp4')
    const probed = await fetchOutput(video)
    expect(probed.streams.find((s) => s.codec_type === 'video')?.codec_name).toBe('h264')
    expect(Number(probed.format.duration)).toBeCloseTo(1, 0)
    const thumbnail = record.outputs.find((o) => o.preset === 'thumbnail')!
    expect(thumbnail.mime).toMatch(/^image\//)
    const picture = await fetchOutput(thumbnail)
    expect(picture.streams[0]?.width).toBeGreaterThan(0)
  })

  it('makes no job for a text file', async () => {
    const txt = join(work, 'notes.txt')
    await writeFile(txt, 'plain notes, not media\n')
    const { status, file } = await upload(txt, 'notes.txt', 'text/plain')
    expect(status).toBe(201)
    await strapi.plugin('transcodekit').service('transcoder').idle()
    expect((await entry(file.id)).file.provider_metadata?.transcodekit).toBeUndefined()
    expect(await jobsFor(file.id)).toHaveLength(0)
  })

  it('records an error, and makes no job, for a file that claims to be audio but is not', async () => {
    const fake = join(work, 'fake.mp3')
    await writeFile(fake, '#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:9/secret.mp3\n')
    const { status, file } = await upload(fake, 'fake.mp3', 'audio/mpeg')
    expect(status).toBe(201)
    expect(file.mime).toBe('audio/mpeg')
    const record = await finished(file.id)
    expect(record.state).toBe('error')
    expect(record.error?.code).toBe('UNSUPPORTED_MEDIA')
    expect(record.outputs).toEqual([])
    expect(await jobsFor(file.id)).toHaveLength(0)
    // A permanent refusal is not retried.
    expect(warnings.filter((w) => w.includes(`create:${file.id} failed`))).toEqual([])
  })

  it('makes one job when the upload event is delivered twice, then ten times at once', async () => {
    const mp3 = await makeTone(join(work, 'again.mp3'), { seconds: 1, format: 'mp3' })
    const { file } = await upload(mp3, 'again.mp3', 'audio/mpeg')
    const row = await strapi.db.query('plugin::upload.file').findOne({ where: { id: file.id } })
    // Strapi's own lifecycle machinery delivers the event again, as in strapi/strapi#21535.
    const deliver = () =>
      strapi.db.lifecycles.run('afterCreate', 'plugin::upload.file', { result: { ...row } })
    await deliver()
    await deliver()
    await Promise.all(Array.from({ length: 10 }, deliver))
    await strapi.plugin('transcodekit').service('transcoder').idle()
    const record = await finished(file.id)
    expect(record.state).toBe('complete')
    const jobs = await jobsFor(file.id)
    expect(jobs).toHaveLength(1)
    expect(jobs[0]!.id).toBe(record.jobId)
  })

  it('deletes the outputs when the entry is deleted', async () => {
    const mp3 = await makeTone(join(work, 'doomed.mp3'), { seconds: 1, format: 'mp3' })
    const { file } = await upload(mp3, 'doomed.mp3', 'audio/mpeg')
    const record = await finished(file.id)
    expect(record.state).toBe('complete')
    for (const output of record.outputs)
      expect((await fetch(new URL(output.url!, base))).status).toBe(200)
    const assetId = profile.assetOf(record.outputs[0]!.url!)
    expect((await profile.storedUnder(assetId)).length).toBe(4) // the original and 3 outputs

    const response = await fetch(`${base}/api/upload/files/${file.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}` },
    })
    expect(response.status).toBe(200)
    await strapi.plugin('transcodekit').service('transcoder').idle()
    expect((await entry(file.id)).status).toBe(404)
    for (const output of record.outputs)
      expect((await fetch(new URL(output.url!, base))).status).toBe(404)
    expect(await profile.storedUnder(assetId)).toEqual([])
    expect(await jobsFor(file.id)).toHaveLength(0)
  })

  it('answers 201 while transcoding is down, and transcodes once it is back', async () => {
    await strapi.plugin('transcodekit').service('transcoder').idle()
    const bringBack = await profile.takeDown()
    let restored = false
    try {
      const mp3 = await makeTone(join(work, 'while-down.mp3'), { seconds: 1, format: 'mp3' })
      const { status, file } = await upload(mp3, 'while-down.mp3', 'audio/mpeg')
      expect(status).toBe(201)
      // Wait (bounded) until a submission has failed and been scheduled again.
      const deadline = Date.now() + 30_000
      while (!warnings.some((w) => w.includes(`create:${file.id} failed`))) {
        if (Date.now() > deadline) throw new Error('the submission never failed')
        await new Promise((r) => setTimeout(r, 50))
      }
      // Strapi's own database is up: the entry is there, with nothing recorded yet.
      expect((await entry(file.id)).file.provider_metadata?.transcodekit).toBeUndefined()

      await bringBack()
      restored = true
      const record = await finished(file.id)
      expect(record.state).toBe('complete')
      expect(record.outputs).toHaveLength(3)
      for (const output of record.outputs) await fetchOutput(output)
      expect(await jobsFor(file.id)).toHaveLength(1)
    } finally {
      if (!restored) await bringBack()
    }
  })

  // The restart test runs once, in the PostgreSQL profile (strapi-database.test.ts: on SQLite).
  if (profile.durable)
    it('finishes and records a job that a restart of Strapi interrupted', async () => {
      const mp4 = await makeVideo(join(work, 'long.mp4'), { seconds: 20, width: 640, height: 360 })
      const { status, file } = await upload(mp4, 'long.mp4', 'video/mp4')
      expect(status).toBe(201)
      // Wait (bounded) until a worker has started the job, then stop Strapi in the middle of it.
      const deadline = Date.now() + 30_000
      for (;;) {
        const [job] = await jobsFor(file.id)
        if (job && job.attempts >= 1 && !['complete', 'error', 'canceled'].includes(job.state))
          break
        if (Date.now() > deadline) throw new Error(`the job never started: ${JSON.stringify(job)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      await shutdown()
      await boot()

      const record = await finished(file.id, 90_000)
      expect(record.state).toBe('complete')
      const [job] = await jobsFor(file.id)
      // Started again by the new process (the first run was cut short), and still one job.
      expect(job!.attempts).toBeGreaterThanOrEqual(2)
      expect(await jobsFor(file.id)).toHaveLength(1)
      const video = record.outputs.find((o) => o.preset === 'mp4-480p')!
      const probed = await fetchOutput(video)
      expect(Number(probed.format.duration)).toBeCloseTo(20, 0)
    }, 150_000)
}
