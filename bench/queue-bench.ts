// Enqueue benchmark: 1,000 jobs created by concurrent callers through the service's
// `transcode` (PostgreSQL repository + pg-boss queue, no worker), against a bare INSERT loop
// of the same 1,000 job rows measured in the same run.
//
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node bench/queue-bench.ts
//
// Prints jobs per second, duplicates (must be 0), and the ratio to the baseline.
import { randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { join } from 'node:path'
// Relative imports: the workspace root depends on none of the packages.
import { DEFAULT_OWNER } from '../packages/core/src/index.ts'
import { makeTone } from '../packages/core/src/testing/media-fixtures.ts'
import { migrateToLatest } from '../packages/kysely/src/index.ts'

import { openBenchService } from './support/pg-boss-service.ts'

const COUNT = 1000
const { url, db, schema, bossSchema, queueName, dir, service, close } = await openBenchService(
  'tk_bench',
  'bench',
)

async function count(pattern: string): Promise<{ rows: number; keys: number }> {
  const result = await db
    .withSchema(schema)
    .selectFrom('jobs')
    .where('idempotency_key', 'like', pattern)
    .select((eb) => [
      eb.fn.countAll().as('rows'),
      eb.fn.count('idempotency_key').distinct().as('keys'),
    ])
    .executeTakeFirstOrThrow()
  return { rows: Number(result.rows), keys: Number(result.keys) }
}

async function queued(): Promise<{ messages: number; jobIds: number }> {
  const result = await db
    .withSchema(bossSchema)
    .selectFrom('job')
    .where('name', '=', queueName)
    .select((eb) => [
      eb.fn.countAll().as('messages'),
      eb.fn.count('singleton_key').distinct().as('jobIds'),
    ])
    .executeTakeFirstOrThrow()
  return { messages: Number(result.messages), jobIds: Number(result.jobIds) }
}

/** The baseline: one plain INSERT per row, one after the other, no checks, no queue. */
async function bareInsertLoop(assetId: string, run: number): Promise<number> {
  const started = performance.now()
  for (let i = 0; i < COUNT; i++) {
    const now = new Date()
    await db
      .withSchema(schema)
      .insertInto('jobs')
      .values({
        id: randomUUID(),
        owner: DEFAULT_OWNER,
        asset_id: assetId,
        engine: 'ffmpeg',
        state: 'submitted',
        progress: 0,
        idempotency_key: `baseline-${run}:${i}`,
        request_hash: 'x',
        attempts: 0,
        created_at: now,
        updated_at: now,
      })
      .execute()
  }
  return performance.now() - started
}

async function transcodeAll(assetId: string): Promise<{ ms: number; ids: string[] }> {
  const started = performance.now()
  const created = await Promise.all(
    Array.from({ length: COUNT }, (_, i) =>
      service.transcode(assetId, { presets: ['flac', 'mp3'], idempotencyKey: `bench:${i}` }),
    ),
  )
  return { ms: performance.now() - started, ids: created.map((job) => job.id) }
}

try {
  await migrateToLatest(db, { schema })
  const tone = await makeTone(join(dir, 'tone.wav'), { seconds: 1, format: 'wav' })
  const asset = await service.ingest(createReadStream(tone), { filename: 'tone.wav' })
  // Warm up: the pool, pg-boss's schema and queue, the JIT.
  await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      service.transcode(asset.id, { presets: ['flac', 'mp3'], idempotencyKey: `warm:${i}` }),
    ),
  )
  await bareInsertLoop(asset.id, 0)

  const baselineA = await bareInsertLoop(asset.id, 1)
  const first = await transcodeAll(asset.id)
  const afterFirst = await count('bench:%')
  const queuedFirst = await queued()
  const again = await transcodeAll(asset.id)
  const afterAgain = await count('bench:%')
  const queuedAgain = await queued()
  const baselineB = await bareInsertLoop(asset.id, 2)
  const baselineMs = (baselineA + baselineB) / 2

  const sameJobs = first.ids.every((id, i) => again.ids[i] === id)
  const duplicates = afterAgain.rows - afterAgain.keys + (COUNT - new Set(first.ids).size)
  const rate = (ms: number) => Math.round((COUNT / ms) * 1000)
  const warmMessages = 50
  const row = (label: string, value: string) => console.log(`${label.padEnd(52)} ${value}`)

  console.log(
    `queue-bench: ${COUNT} jobs, PostgreSQL ${url.replace(/:[^:@/]*@/, ':***@')}, pool of 10`,
  )
  row(
    'baseline: bare INSERT loop (mean of 2 runs)',
    `${baselineMs.toFixed(0)} ms  ${rate(baselineMs)} rows/s`,
  )
  row(
    `transcode x${COUNT}, concurrent, new keys`,
    `${first.ms.toFixed(0)} ms  ${rate(first.ms)} jobs/s`,
  )
  row(
    `transcode x${COUNT}, concurrent, same keys again`,
    `${again.ms.toFixed(0)} ms  ${rate(again.ms)} jobs/s`,
  )
  row('job rows / distinct keys after first run', `${afterFirst.rows} / ${afterFirst.keys}`)
  row('job rows / distinct keys after resending', `${afterAgain.rows} / ${afterAgain.keys}`)
  row('resend returned the same job for every key', String(sameJobs))
  row(
    'pg-boss messages / distinct job ids (after first, after resend)',
    `${queuedFirst.messages - warmMessages} / ${queuedFirst.jobIds - warmMessages}, ${queuedAgain.messages - warmMessages} / ${queuedAgain.jobIds - warmMessages}`,
  )
  row('duplicates', String(duplicates))
  row('ratio: transcode jobs/s ÷ bare INSERT rows/s', (baselineMs / first.ms).toFixed(2))
  if (
    duplicates !== 0 ||
    afterAgain.rows !== COUNT ||
    !sameJobs ||
    queuedAgain.messages !== queuedAgain.jobIds
  ) {
    process.exitCode = 1
    console.log('FAILED: duplicates found')
  }
} finally {
  await close()
}
