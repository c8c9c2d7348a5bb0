/**
 * CMS burst benchmark: 1,000 distinct `afterCreate` events of media entries (audio, one small
 * WAV each) handed at once to the lifecycle adapter of @transcodekit/strapi, over the kysely
 * repository and the pg-boss queue on PostgreSQL (no worker: this measures submission), against
 * pg-boss alone sending 1,000 messages at once to a queue of the same policy. Rounds interleave
 * the two (the order reversed every other round); each round of the adapter uses entry ids of
 * its own, then delivers the same 1,000 events again.
 *
 * Prints each round (events/s, the job rows and pg-boss messages made by the burst and by the
 * resend), then min / median / max of the rates and of the per-round ratio to pg-boss alone,
 * and the CPU per event of the burst: of the processes it spawned (ffprobe), and of this one.
 * Fails (exit code 1) unless every burst made exactly 1,000 jobs and the resend 0 more.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node bench/cms-bench.ts
 *   ROUNDS=5 EVENTS=1000   (the defaults)
 *   TRANSCODEKIT_SPAWN=direct   spawns ffprobe from this process instead of the launcher
 */
import { randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { makeTone } from '../packages/core/src/testing/media-fixtures.ts'
import { migrateToLatest } from '../packages/kysely/src/index.ts'
import { createLifecycleAdapter, type LifecycleEvent } from '../packages/strapi/src/index.ts'
import {
  type Contender,
  interleave,
  printSpread,
  ratios,
  roundsFromEnv,
} from './support/bench-rounds.ts'

import { childrenCpuSec } from './support/child-cpu.ts'
import { openBenchService } from './support/pg-boss-service.ts'

const kyselyRequire = createRequire(new URL('../packages/kysely/package.json', import.meta.url))
const { PgBoss }: typeof import('pg-boss') = await import(
  pathToFileURL(kyselyRequire.resolve('pg-boss')).href
)

const ROUNDS = roundsFromEnv(5)
const EVENTS = Number(process.env.EVENTS ?? 1000)
const { url, db, schema, bossSchema, queueName, queue, dir, service, close } =
  await openBenchService('tk_cms', 'transcode')
const aloneSchema = schema.replace('tk_cms_', 'tk_cms_alone_')
const alone = new PgBoss({ connectionString: url, schema: aloneSchema, schedule: false })
alone.on('error', (error: unknown) => console.error('pg-boss alone:', error))

async function jobRows(prefix: string): Promise<number> {
  const row = await db
    .withSchema(schema)
    .selectFrom('jobs')
    .where('idempotency_key', 'like', `${prefix}%`)
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

async function messages(inSchema: string, name: string): Promise<number> {
  const row = await db
    .withSchema(inSchema)
    .selectFrom('job')
    .where('name', '=', name)
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

interface Sample {
  ms: number
  /** The adapter's: the resend of the same events. */
  resendMs?: number
  jobs?: number
  jobsAfterResend?: number
  messages: number
  messagesAfterResend?: number
  /** The adapter's burst: CPU ms per event of the processes it spawned (ffprobe), and its own. */
  childCpuMs?: number | null
  ownCpuMs?: number
}

let failed = false
try {
  await migrateToLatest(db, { schema })
  const tone = await makeTone(join(dir, 'tone.wav'), { seconds: 1, format: 'wav' })
  await alone.start()
  await queue.start()

  const adapterFor = (round: number) =>
    createLifecycleAdapter({
      service,
      rules: [{ mime: 'audio/*', presets: ['flac', 'mp3'] }],
      readOriginal: async () => createReadStream(tone),
      keyPrefix: `bench-${round}:`,
    })
  const events = (round: number): LifecycleEvent[] =>
    Array.from({ length: EVENTS }, (_, i) => ({
      action: 'afterCreate',
      model: 'plugin::upload.file',
      result: {
        id: round * 1_000_000 + i,
        name: `tone-${i}.wav`,
        mime: 'audio/wav',
        ext: '.wav',
        hash: `tone_${round}_${i}`,
        url: `/uploads/tone_${round}_${i}.wav`,
        provider: 'local',
        size: 176,
      },
    }))

  const adapterContender: Contender<Sample> = {
    name: 'adapter',
    async run(round) {
      const adapter = adapterFor(round)
      const burst = events(round)
      const before = await messages(bossSchema, queueName)
      const childCpu = childrenCpuSec()
      const ownCpu = process.cpuUsage()
      let started = performance.now()
      const outcomes = await Promise.all(burst.map((event) => adapter.handle(event)))
      const ms = performance.now() - started
      const childCpuAfter = childrenCpuSec()
      const ownCpuUs = process.cpuUsage(ownCpu)
      const childCpuMs =
        childCpu === null || childCpuAfter === null
          ? null
          : ((childCpuAfter - childCpu) * 1000) / EVENTS
      const ownCpuMs = (ownCpuUs.user + ownCpuUs.system) / 1000 / EVENTS
      if (outcomes.some((o) => o.status !== 'submitted')) throw new Error('an event not submitted')
      const jobs = await jobRows(`bench-${round}:`)
      const sent = (await messages(bossSchema, queueName)) - before
      started = performance.now()
      await Promise.all(events(round).map((event) => adapter.handle(event)))
      const resendMs = performance.now() - started
      const jobsAfterResend = await jobRows(`bench-${round}:`)
      const sentAfterResend = (await messages(bossSchema, queueName)) - before
      if (jobs !== EVENTS || jobsAfterResend !== EVENTS) failed = true
      return {
        ms,
        resendMs,
        jobs,
        jobsAfterResend,
        messages: sent,
        messagesAfterResend: sentAfterResend,
        childCpuMs,
        ownCpuMs,
      }
    },
  }
  const aloneContender: Contender<Sample> = {
    name: 'pg-boss',
    async run(round) {
      const name = `alone-${round}`
      await alone.createQueue(name, { policy: 'exclusive' })
      const started = performance.now()
      await Promise.all(
        Array.from({ length: EVENTS }, () => {
          const jobId = randomUUID()
          return alone.send(name, { jobId }, { singletonKey: jobId })
        }),
      )
      const ms = performance.now() - started
      return { ms, messages: await messages(aloneSchema, name) }
    },
  }

  // Warm-up: the pools, the JIT, ffprobe's first start (round 0: ids and queue of its own).
  await Promise.all(
    events(0)
      .slice(0, 20)
      .map((event) => adapterFor(0).handle(event)),
  )
  await alone.createQueue('alone-0', { policy: 'exclusive' })
  await Promise.all(Array.from({ length: 20 }, () => alone.send('alone-0', {})))

  console.log(
    `cms-bench: ${EVENTS} distinct afterCreate events, ${ROUNDS} interleaved rounds, PostgreSQL, Node ${process.version}`,
  )
  const rate = (ms: number) => (EVENTS / ms) * 1000
  const samples = await interleave(ROUNDS, [aloneContender, adapterContender], (round, name, s) =>
    console.log(
      name === 'pg-boss'
        ? `round ${String(round).padEnd(3)} pg-boss alone  ${(s.ms / 1000).toFixed(2).padStart(6)} s  ${rate(s.ms).toFixed(0).padStart(5)} messages/s  (${s.messages} messages)`
        : `round ${String(round).padEnd(3)} adapter        ${(s.ms / 1000).toFixed(2).padStart(6)} s  ${rate(s.ms).toFixed(0).padStart(5)} events/s    jobs ${s.jobs}, after resend ${s.jobsAfterResend} (resend ${(s.resendMs! / 1000).toFixed(2)} s); pg-boss messages ${s.messages}, after resend ${s.messagesAfterResend}`,
    ),
  )
  const ms = (name: string) => samples.get(name)!.map((s) => s.ms)
  console.log('summary (over the rounds):')
  printSpread('  pg-boss alone: messages/s', ms('pg-boss').map(rate), 0)
  printSpread('  adapter: events/s', ms('adapter').map(rate), 0)
  printSpread(
    '  adapter: resend, events/s',
    samples.get('adapter')!.map((s) => rate(s.resendMs!)),
    0,
  )
  printSpread('  ratio adapter time / pg-boss alone time', ratios(ms('adapter'), ms('pg-boss')), 1)
  // Where the time goes: the spawned processes (ffprobe) against this process, per event.
  const adapterSamples = samples.get('adapter')!
  if (adapterSamples.every((s) => typeof s.childCpuMs === 'number')) {
    printSpread(
      '  adapter: CPU of spawned processes per event',
      adapterSamples.map((s) => s.childCpuMs as number),
      1,
      'ms',
    )
  }
  printSpread(
    '  adapter: CPU of this process per event',
    adapterSamples.map((s) => s.ownCpuMs as number),
    1,
    'ms',
  )
  const extra = samples.get('adapter')!.map((s) => s.jobsAfterResend! - s.jobs!)
  console.log(
    `jobs per burst: exactly ${EVENTS} in every round: ${failed ? 'NO' : 'yes'}; more jobs after the resend: ${extra.join(', ')}`,
  )
  console.log('goal: >= 500 events/s with 0 duplicates')
} finally {
  await alone.stop({ graceful: false, wait: true }).catch(() => {})
  await db.schema.dropSchema(aloneSchema).ifExists().cascade().execute()
  await close()
}
if (failed) {
  console.log('FAILED: a burst did not make exactly one job per event')
  process.exitCode = 1
}
