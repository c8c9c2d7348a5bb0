// The service the queue and CMS benchmarks submit through: the kysely repository and the
// pg-boss queue on PostgreSQL, in schemas of their own, no worker (they measure submission).
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
// Relative imports: the workspace root depends on none of the packages.
import {
  createTranscoder,
  ffmpegEngine,
  localStorage,
  type TranscodeService,
} from '../../packages/core/src/index.ts'
import { kyselyRepository, openDatabase, pgBossQueue } from '../../packages/kysely/src/index.ts'

export interface BenchService {
  url: string
  /** A temp folder for media, storage and spools. */
  dir: string
  db: Awaited<ReturnType<typeof openDatabase>>['db']
  /** The repository's schema and pg-boss's, `<prefix>_<random>` and `<prefix>_boss_<random>`. */
  schema: string
  bossSchema: string
  queueName: string
  queue: ReturnType<typeof pgBossQueue>
  service: TranscodeService
  /** Closes the service and the queue, drops both schemas, closes the pool, removes `dir`. */
  close(): Promise<void>
}

export async function openBenchService(prefix: string, queueName: string): Promise<BenchService> {
  const url = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'
  const suffix = randomBytes(4).toString('hex')
  const schema = `${prefix}_${suffix}`
  const bossSchema = `${prefix}_boss_${suffix}`
  const dir = await mkdtemp(join(tmpdir(), `${prefix.replaceAll('_', '-')}-`))
  const database = await openDatabase({ url, maxConnections: 10 })
  const queue = pgBossQueue({ connectionString: url, schema: bossSchema, queueName })
  const service = createTranscoder({
    storage: localStorage({ root: join(dir, 'storage') }),
    engine: ffmpegEngine({ tmpDir: join(dir, 'tmp') }),
    repository: kyselyRepository({ db: database.db, schema }),
    queue,
    worker: false,
    tmpDir: join(dir, 'spool'),
  })
  return {
    url,
    dir,
    db: database.db,
    schema,
    bossSchema,
    queueName,
    queue,
    service,
    async close() {
      await service.close()
      await queue.close()
      for (const name of [schema, bossSchema]) {
        await database.db.schema.dropSchema(name).ifExists().cascade().execute()
      }
      await database.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}
