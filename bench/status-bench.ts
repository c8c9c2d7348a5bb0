/**
 * Status-read benchmark: autocannon, 32 connections, on `GET /jobs/:id` of
 *
 *   - `bare`: a bare Fastify 5 + `pg` Pool route running the SQL that the kysely repository's
 *     getJob runs (captured from the repository itself at the start), on PostgreSQL;
 *   - `postgres`: transcodekit's server as `pnpm start` runs it (its Node flags, its default
 *     log level), `WORKER=false`, on the same PostgreSQL (schemas of its own);
 *   - `embedded`: the same server on the default database, embedded PostgreSQL (PGlite).
 *
 * Every server runs in a process of its own; the load comes from this one. Rounds interleave
 * the three (the order reversed every other round). Prints each round, then min / median / max
 * of req/s and p99 latency, and of the per-round ratios of req/s to the bare route.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node bench/status-bench.ts
 *   ROUNDS=5 BENCH_SECONDS=10 CONNECTIONS=32   (the defaults)
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { scriptCommand } from '../packages/cli/test/server-process.ts'
import { makeTone } from '../packages/core/src/testing/media-fixtures.ts'
import { kyselyRepository } from '../packages/kysely/src/index.ts'
import {
  type Contender,
  interleave,
  printSpread,
  ratios,
  roundsFromEnv,
} from './support/bench-rounds.ts'
import { type ChildServer, startChild, stopChild } from './support/child-server.ts'

const kyselyRequire = createRequire(new URL('../packages/kysely/package.json', import.meta.url))
const { Kysely, PostgresDialect }: typeof import('kysely') = kyselyRequire('kysely')
const { Pool }: typeof import('pg') = kyselyRequire('pg')

const url = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'
const ROUNDS = roundsFromEnv(5)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 32)
const MAIN = fileURLToPath(new URL('../examples/server/src/main.ts', import.meta.url))
const BARE = fileURLToPath(new URL('./support/bare-status-server.ts', import.meta.url))
const suffix = randomBytes(4).toString('hex')
const schema = `tk_status_${suffix}`
const queueSchema = `tk_status_boss_${suffix}`

interface Sample {
  rps: number
  p99: number
}

/** Uploads a one-second tone and returns the id of its job. */
async function submitJob(port: number, tone: string): Promise<string> {
  const form = new FormData()
  form.append('presets', 'flac,mp3')
  form.append('file', new Blob([await readFile(tone)], { type: 'audio/wav' }), 'tone.wav')
  const res = await fetch(`http://127.0.0.1:${port}/api/uploads`, { method: 'POST', body: form })
  const body = (await res.json()) as { job?: { id: string } }
  if (res.status !== 201 || !body.job)
    throw new Error(`upload: ${res.status} ${JSON.stringify(body)}`)
  return body.job.id
}

function target(
  name: string,
  server: ChildServer,
  path: string,
): Contender<Sample> & { run(round: number, seconds?: number): Promise<Sample> } {
  return {
    name,
    async run(_round: number, seconds: number = SECONDS) {
      const result = await autocannon({
        url: `http://127.0.0.1:${server.port}${path}`,
        connections: CONNECTIONS,
        duration: seconds,
      })
      if (result.non2xx > 0 || result.errors > 0) {
        throw new Error(`${name}: ${result.non2xx} non-2xx answers, ${result.errors} errors`)
      }
      return { rps: result.requests.average, p99: result.latency.p99 }
    },
  }
}

const dir = await mkdtemp(join(tmpdir(), 'tk-status-bench-'))
const servers: ChildServer[] = []
const pool = new Pool({ connectionString: url, max: 2 })
try {
  const tone = await makeTone(join(dir, 'tone.wav'), { seconds: 1, format: 'wav' })
  const script = scriptCommand('start')
  const env = {
    ...script.env,
    HOST: '127.0.0.1',
    PORT: '0',
    WORKER: 'false',
    RATE_LIMIT_UPLOADS: '0',
    NODE_COMPILE_CACHE: join(dir, 'compile-cache'),
  }
  const postgres = await startChild([...script.flags, MAIN], {
    ...env,
    DATA_DIR: join(dir, 'data-postgres'),
    DATABASE_URL: url,
    DATABASE_SCHEMA: schema,
    QUEUE_SCHEMA: queueSchema,
  })
  servers.push(postgres)
  const postgresJob = await submitJob(postgres.port, tone)
  const embedded = await startChild([...script.flags, MAIN], {
    ...env,
    DATA_DIR: join(dir, 'data-embedded'),
    DATABASE_URL: '',
  })
  servers.push(embedded)
  const embeddedJob = await submitJob(embedded.port, tone)

  // The SQL getJob runs, as the repository builds it, captured from Kysely's query log.
  let captured: { sql: string; parameters: readonly unknown[] } | null = null
  const db = new Kysely<never>({
    dialect: new PostgresDialect({ pool }),
    log: (event) => {
      if (event.level === 'query' && !captured) captured = event.query
    },
  })
  const job = await kyselyRepository({ db, schema }).getJob(postgresJob)
  if (!job || !captured) throw new Error('getJob found no job')
  const { sql, parameters } = captured as { sql: string; parameters: readonly unknown[] }
  if (parameters.length !== 1 || parameters[0] !== postgresJob) {
    throw new Error(`getJob ran ${sql} with ${JSON.stringify(parameters)}: not one id parameter`)
  }
  const bare = await startChild([BARE], { DATABASE_URL: url, BENCH_SQL: sql })
  servers.push(bare)

  const contenders = [
    target('bare', bare, `/jobs/${postgresJob}`),
    target('postgres', postgres, `/api/jobs/${postgresJob}`),
    target('embedded', embedded, `/api/jobs/${embeddedJob}`),
  ]
  // Warm-up: the JIT, the pools.
  for (const contender of contenders) await contender.run(0, 2)
  console.log(
    `status-bench: GET /jobs/:id, ${ROUNDS} interleaved rounds x ${SECONDS} s, ${CONNECTIONS} connections, Node ${process.version}, server flags: ${script.flags.join(' ') || 'none'}`,
  )
  console.log(`bare route SQL: ${sql}`)
  const samples = await interleave(ROUNDS, contenders, (round, name, s) =>
    console.log(
      `round ${String(round).padEnd(3)} ${name.padEnd(9)} ${s.rps.toFixed(0).padStart(7)} req/s  p99 ${String(s.p99).padStart(4)} ms`,
    ),
  )
  const rps = (name: string) => samples.get(name)!.map((s) => s.rps)
  console.log('summary (over the rounds):')
  for (const { name } of contenders) {
    printSpread(`  ${name}: req/s`, rps(name), 0)
    printSpread(
      `  ${name}: p99`,
      samples.get(name)!.map((s) => s.p99),
      0,
      'ms',
    )
  }
  printSpread('  ratio postgres / bare, req/s', ratios(rps('postgres'), rps('bare')))
  printSpread('  ratio embedded / bare, req/s', ratios(rps('embedded'), rps('bare')))
  console.log('goals: postgres >= 0.8x and p99 <= 20 ms; embedded >= 0.6x')
} finally {
  for (const server of servers) await stopChild(server)
  await pool.query(`drop schema if exists ${schema} cascade`)
  await pool.query(`drop schema if exists ${queueSchema} cascade`)
  await pool.end()
  await rm(dir, { recursive: true, force: true })
}
