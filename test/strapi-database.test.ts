import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTone, makeVideo } from '../packages/core/src/testing/index.ts'
import { repositoryConformance } from '../packages/core/src/testing/repository-suite.ts'
import {
  adminSql,
  appRequire,
  PG_URL,
  STRAPI_INSTALLED,
  StrapiTestApp,
  strapiEnv,
} from './support/strapi-app.ts'

// @transcodekit/strapi with no `databaseUrl`: jobs, outputs and the work queue in Strapi's own
// database, on SQLite (Strapi's default, better-sqlite3) and on PostgreSQL. The real Strapi app
// of examples/strapi, installed from the packed tarballs, with the local upload provider.

if (!STRAPI_INSTALLED) {
  if (process.env.CI) {
    describe('Strapi example', () => {
      it('is installed', () => {
        throw new Error('examples/strapi is not installed: run examples/strapi/install.sh')
      })
    })
  } else console.warn('[strapi-database.test.ts] skipped: run examples/strapi/install.sh')
}

interface DatabaseProfile {
  name: 'sqlite' | 'postgres' | 'mysql'
  setUp(work: string): Promise<Record<string, string>>
  tearDown(): Promise<void>
}

const sqlite: DatabaseProfile = {
  name: 'sqlite',
  async setUp(work) {
    return { DATABASE_CLIENT: 'sqlite', DATABASE_FILENAME: join(work, 'data.db') }
  },
  async tearDown() {},
}

function postgres(): DatabaseProfile {
  const database = `strapi_db_test_${randomBytes(4).toString('hex')}`
  return {
    name: 'postgres',
    async setUp() {
      await adminSql(`CREATE DATABASE ${database}`)
      return { DATABASE_CLIENT: 'postgres', DATABASE_URL: `${PG_URL}/${database}` }
    },
    async tearDown() {
      await adminSql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
    },
  }
}

const MYSQL_SERVER = process.env.STRAPI_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306'

async function mysqlAdmin(sql: string): Promise<void> {
  const mysql = appRequire('mysql2/promise') as typeof import('mysql2/promise')
  const connection = await mysql.createConnection(MYSQL_SERVER)
  try {
    await connection.query(sql)
  } finally {
    await connection.end()
  }
}

/** MariaDB or MySQL, when a server answers (MariaDB 10.11 here); skipped otherwise. */
function mysql(): DatabaseProfile {
  const database = `strapi_db_test_${randomBytes(4).toString('hex')}`
  return {
    name: 'mysql',
    async setUp() {
      await mysqlAdmin(`CREATE DATABASE ${database} CHARACTER SET utf8mb4`)
      return { DATABASE_CLIENT: 'mysql', DATABASE_URL: `${MYSQL_SERVER}/${database}` }
    },
    async tearDown() {
      await mysqlAdmin(`DROP DATABASE IF EXISTS ${database}`)
    },
  }
}

const MYSQL_UP = await mysqlAdmin('SELECT 1').then(
  () => true,
  (error: unknown) => {
    console.warn(`[strapi-database.test.ts] MySQL/MariaDB skipped: ${String(error)}`)
    return false
  },
)

for (const profile of [sqlite, postgres(), ...(MYSQL_UP ? [mysql()] : [])]) {
  describe.skipIf(!STRAPI_INSTALLED)(`@transcodekit/strapi on Strapi's ${profile.name}`, () => {
    let work: string
    let app: StrapiTestApp

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), `tk-strapi-${profile.name}-`))
      await mkdir(join(work, 'public', 'uploads'), { recursive: true })
      for (const key of Object.keys(process.env)) {
        if (
          key.startsWith('TRANSCODEKIT_') ||
          key.startsWith('AWS_') ||
          key.startsWith('DATABASE_')
        )
          delete process.env[key]
      }
      Object.assign(process.env, strapiEnv(), await profile.setUp(work), {
        PUBLIC_DIR: join(work, 'public'),
        UPLOAD_PROVIDER: 'local',
        TRANSCODEKIT_AUDIO_PRESETS: 'wav,aac-256k',
        TRANSCODEKIT_VIDEO_PRESETS: 'mp4-480p',
      })
      app = new StrapiTestApp(work)
      await app.start()
      console.info(`[strapi-database.test.ts] ${profile.name}: boot ${app.bootMs[0]} ms`)
    }, 120_000)

    afterAll(async () => {
      if (app?.strapi) await app.stop()
      await profile.tearDown()
      if (work) await rm(work, { recursive: true, force: true })
    })

    /** Rows of a table of Strapi's database where `column` is `value`. */
    async function rowsOf(table: string, column: string, value: string): Promise<number> {
      const { n } = await app.strapi.db
        .connection(table)
        .where(column, value)
        .count('* as n')
        .first()
      return Number(n)
    }

    // The repository the plugin built on Strapi's own Knex, inside the booted app.
    repositoryConformance(`the plugin's repository on Strapi's ${profile.name}`, async () => ({
      repository: app.plugin.service.repository,
    }))

    it('keeps the job of an upload in the transcodekit tables of Strapi’s database', async () => {
      const mp3 = await makeTone(join(work, 'song.mp3'), { seconds: 2, format: 'mp3' })
      const { status, file } = await app.upload(mp3, 'song.mp3', 'audio/mpeg')
      expect(status).toBe(201)
      const record = await app.finished(file.id)
      expect(record.state).toBe('complete')
      expect(record.outputs.map((o) => o.preset).sort()).toEqual(['aac-256k', 'wav'])
      for (const output of record.outputs) {
        const { size, probed } = await app.fetchOutput(output)
        expect(size).toBe(output.size)
        expect(Number(probed.format.duration)).toBeCloseTo(2, 0)
      }
      const [job] = await app.jobsFor(file.id)
      expect(job).toMatchObject({ id: record.jobId, state: 'complete' })
      expect(await rowsOf('transcodekit_jobs', 'id', job!.id)).toBe(1)
      expect(await rowsOf('transcodekit_outputs', 'job_id', job!.id)).toBe(2)
      // Its message left the work queue once the job had run.
      expect(await rowsOf('transcodekit_work', 'job_id', job!.id)).toBe(0)
    })

    if (profile.name !== 'sqlite') return

    it('replaces: a new file starts a new job and removes the old outputs; a new caption starts nothing', async () => {
      const first = await makeTone(join(work, 'take-1.mp3'), { seconds: 1, format: 'mp3' })
      const { file } = await app.upload(first, 'take.mp3', 'audio/mpeg')
      const before = await app.finished(file.id)
      expect(before.state).toBe('complete')
      for (const output of before.outputs) expect(await app.status(output.url!)).toBe(200)

      const second = await makeTone(join(work, 'take-2.mp3'), {
        seconds: 3,
        format: 'mp3',
      })
      const replaced = await app.upload(second, 'take.mp3', 'audio/mpeg', file.id)
      expect(replaced.status).toBe(200)
      expect(replaced.file.id).toBe(file.id)
      // Strapi keeps the entry's hash (its file name) on a replacement: the bytes tell.
      expect(replaced.file.hash).toBe(file.hash)

      const after = await app.finished(file.id, { notJob: before.jobId! })
      expect(after.state).toBe('complete')
      expect(after.assetId).not.toBe(before.assetId)
      const sha256 = createHash('sha256')
        .update(await readFile(second))
        .digest('hex')
      expect(after.sourceSha256).toBe(sha256)
      for (const output of after.outputs) {
        const { probed } = await app.fetchOutput(output)
        expect(Number(probed.format.duration)).toBeCloseTo(3, 0)
      }
      // The old outputs and the old asset are gone.
      for (const output of before.outputs) expect(await app.status(output.url!)).toBe(404)
      expect(await app.plugin.service.repository.getAsset(before.assetId!)).toBeNull()
      const jobs = await app.jobsFor(file.id)
      expect(jobs.map((j) => [j.id, j.idempotencyKey])).toEqual([
        [after.jobId, `strapi:file:${file.id}:${sha256.slice(0, 32)}`],
      ])

      // A new name and caption: the same file, no job.
      expect(await app.editInfo(file.id, { name: 'renamed.mp3', caption: 'A caption' })).toBe(200)
      await app.plugin.idle()
      const edited = await app.entry(file.id)
      expect(edited.file.caption).toBe('A caption')
      expect(edited.file.provider_metadata?.transcodekit?.jobId).toBe(after.jobId)
      expect((await app.jobsFor(file.id)).map((j) => j.id)).toEqual([after.jobId])

      // The same bytes again: no job either.
      expect((await app.upload(second, 'take.mp3', 'audio/mpeg', file.id)).status).toBe(200)
      await app.plugin.idle()
      expect((await app.entry(file.id)).file.provider_metadata?.transcodekit?.jobId).toBe(
        after.jobId,
      )
      expect((await app.jobsFor(file.id)).map((j) => j.id)).toEqual([after.jobId])
    })

    it('finishes once a job that a restart of Strapi interrupted', async () => {
      const mp4 = await makeVideo(join(work, 'long.mp4'), { seconds: 20, width: 640, height: 360 })
      const { status, file } = await app.upload(mp4, 'long.mp4', 'video/mp4')
      expect(status).toBe(201)
      // Wait (bounded) until the worker has claimed and started the job, then stop Strapi.
      const deadline = Date.now() + 30_000
      for (;;) {
        const [job] = await app.jobsFor(file.id)
        if (job && job.attempts >= 1 && job.state === 'progressing') break
        if (Date.now() > deadline) throw new Error(`the job never started: ${JSON.stringify(job)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      await app.restart()
      console.info(`[strapi-database.test.ts] sqlite: restart ${app.bootMs.at(-1)} ms`)

      const record = await app.finished(file.id, { timeoutMs: 90_000 })
      expect(record.state).toBe('complete')
      const jobs = await app.jobsFor(file.id)
      expect(jobs).toHaveLength(1)
      // Claimed again by the new process (the first run was cut short), and run to its end
      // once: the claim is released at shutdown and taken once at the start.
      expect(jobs[0]!.attempts).toBe(2)
      const video = record.outputs.find((o) => o.preset === 'mp4-480p')!
      const { probed } = await app.fetchOutput(video)
      expect(Number(probed.format.duration)).toBeCloseTo(20, 0)
      expect(await rowsOf('transcodekit_work', 'job_id', jobs[0]!.id)).toBe(0)
    }, 150_000)
  })
}
