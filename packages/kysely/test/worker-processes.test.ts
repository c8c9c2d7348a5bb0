import { type ChildProcess, spawn } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import {
  createTranscoder,
  ffmpegEngine,
  type Job,
  jobPrefix,
  localStorage,
  probeMedia,
  type TranscodeService,
} from '@transcodekit/core'
import { filesUnder, makeTone } from '@transcodekit/core/testing'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { kyselyRepository, type PgBossQueue, pgBossQueue } from '../src/index.ts'
import { DATABASE_URL, TestDatabase, waitFor } from './support/test-databases.ts'

const FIXTURE = join(import.meta.dirname, 'fixtures', 'transcode-worker.ts')

interface WorkerEvent {
  worker: string
  pid: number
  at: number
  event: 'ready' | 'start' | 'end' | 'stopped' | 'boss-error'
  jobId?: string
  attempt?: number
  outcome?: 'returned' | 'threw'
  state?: string
  message?: string
}

interface WorkerProcess {
  name: string
  child: ChildProcess
  events: WorkerEvent[]
  exited: Promise<number | null>
  tmpDir: string
}

/**
 * The live processes under `pid`, from /proc: its children and theirs (ffmpeg runs under the
 * worker's process launcher).
 */
async function childrenOf(pid: number): Promise<Array<{ pid: number; comm: string }>> {
  const all: Array<{ pid: number; ppid: number; comm: string }> = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => null)
    if (!stat) continue
    // "pid (comm) state ppid …": comm may contain spaces, so split after the last ")".
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (state !== 'Z') all.push({ pid: Number(entry), ppid: Number(ppid), comm })
  }
  const under = new Set([pid])
  const found: Array<{ pid: number; comm: string }> = []
  // Parents before children is not the order of /proc: go round until nothing is added.
  for (let added = true; added; ) {
    added = false
    for (const p of all) {
      if (under.has(p.ppid) && !under.has(p.pid)) {
        under.add(p.pid)
        found.push({ pid: p.pid, comm: p.comm })
        added = true
      }
    }
  }
  return found
}

/** Whether `pid` is a running (not zombie) process. */
async function isAlive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
  return stat !== null && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
}

describe('worker processes on PostgreSQL with pg-boss', () => {
  const database = new TestDatabase('postgres')
  const bossSchema = database.bossSchema()
  const workers: WorkerProcess[] = []
  const closers: Array<() => Promise<void>> = []
  let schema: string
  let dir: string
  let storageRoot: string

  beforeAll(async () => {
    ;({ schema } = await database.schema())
    dir = await mkdtemp(join(tmpdir(), 'tk-workers-'))
    storageRoot = join(dir, 'storage')
  })

  afterEach(async () => {
    // Whatever a test left running: stop it (the processes this file started, by pid).
    for (const worker of workers.splice(0)) {
      if (worker.child.exitCode === null && worker.child.signalCode === null) {
        worker.child.kill('SIGTERM')
        const timer = setTimeout(() => worker.child.kill('SIGKILL'), 10_000)
        await worker.exited
        clearTimeout(timer)
      }
    }
    for (const close of closers.splice(0).reverse()) await close()
  })

  afterAll(async () => {
    await database.close()
    await rm(dir, { recursive: true, force: true })
  })

  async function startWorker(name: string, queueName: string, extra: Record<string, unknown> = {}) {
    const tmp = join(dir, `tmp-${name}`)
    const config = {
      name,
      databaseUrl: DATABASE_URL,
      schema,
      bossSchema,
      queueName,
      storageRoot,
      tmpDir: tmp,
      pollingIntervalSeconds: 0.5,
      retryDelaySec: 1,
      ...extra,
    }
    const child = spawn(process.execPath, [FIXTURE, JSON.stringify(config)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
    })
    const worker: WorkerProcess = {
      name,
      child,
      events: [],
      tmpDir: tmp,
      exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    }
    let stderr = ''
    child.stderr!.on('data', (chunk) => {
      stderr += chunk
    })
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('{')) worker.events.push(JSON.parse(line) as WorkerEvent)
    })
    workers.push(worker)
    await waitFor(
      async () => ({
        ready: worker.events.some((e) => e.event === 'ready'),
        exited: child.exitCode,
      }),
      (s) => s.ready || s.exited !== null,
      { timeoutMs: 30_000, what: `worker ${name} to be ready` },
    )
    if (child.exitCode !== null) throw new Error(`worker ${name} exited early: ${stderr}`)
    return worker
  }

  async function submitter(queueName: string): Promise<TranscodeService> {
    const queue: PgBossQueue = pgBossQueue({
      connectionString: DATABASE_URL,
      schema: bossSchema,
      queueName,
    })
    const service = createTranscoder({
      storage: localStorage({ root: storageRoot }),
      engine: ffmpegEngine({ tmpDir: join(dir, 'tmp-submitter') }),
      repository: kyselyRepository({ db: await database.db(), schema }),
      queue,
      worker: false,
      tmpDir: join(dir, 'spool'),
    })
    closers.push(async () => {
      await service.close()
      await queue.close()
    })
    return service
  }

  it('hands the job of a worker killed mid-transcode to another, which completes it once, with no orphan ffmpeg and no partial output', async () => {
    const queueName = 'kill-test'
    const service = await submitter(queueName)
    // Long enough that ffmpeg is still busy for seconds after the kill.
    const source = await makeTone(join(dir, 'long.wav'), { seconds: 60, format: 'wav' })
    const asset = await service.ingest(createReadStream(source), { filename: 'long.wav' })

    // heartbeatSeconds is pg-boss's floor (10): a dead worker's job is handed over after it.
    const first = await startWorker('first', queueName, {
      heartbeatSeconds: 10,
      superviseIntervalSeconds: 1,
    })
    const job = await service.transcode(asset.id, { presets: ['flac', 'mp3'] })
    const running = await waitFor(
      () => service.getJob(job.id),
      (j: Job) => j.progress > 0,
      { timeoutMs: 30_000, intervalMs: 20, what: 'progress in the database' },
    )
    const [ffmpeg] = await waitFor(
      async () => (await childrenOf(first.child.pid!)).filter((c) => c.comm.includes('ffmpeg')),
      (list) => list.length > 0,
      { timeoutMs: 10_000, intervalMs: 20, what: "the first worker's ffmpeg" },
    )
    first.child.kill('SIGKILL')
    await first.exited
    const killedAt = Date.now()
    expect(running.state).toBe('progressing')
    const atKill = (await service.getJob(job.id))!
    expect(atKill.state).toBe('progressing')
    expect(atKill.progress).toBeLessThan(100)

    // The ffmpeg of the dead worker dies with it, at once: it does not run on as an orphan
    // (which ffmpeg would: a broken progress pipe does not stop it).
    await waitFor(
      () => isAlive(ffmpeg!.pid),
      (alive) => !alive,
      {
        timeoutMs: 15_000,
        intervalMs: 20,
        what: `the orphaned ffmpeg ${ffmpeg!.pid} to exit`,
      },
    )
    const orphanLivedMs = Date.now() - killedAt
    // Nothing of the killed run is visible in storage.
    const jobDir = join(storageRoot, jobPrefix('', asset.id, job.id))
    expect(await filesUnder(jobDir)).toEqual([])

    const second = await startWorker('second', queueName, {
      heartbeatSeconds: 10,
      superviseIntervalSeconds: 1,
    })
    const done = await waitFor(
      () => service.getJob(job.id),
      (j: Job) => j.state !== 'submitted' && j.state !== 'progressing',
      { timeoutMs: 90_000, intervalMs: 200, what: 'the job to end on the second worker' },
    )
    const handedOverMs = Date.now() - killedAt
    expect(done).toMatchObject({ state: 'complete', progress: 100, attempts: 2 })

    const starts = [...first.events, ...second.events].filter((e) => e.event === 'start')
    const ends = [...first.events, ...second.events].filter((e) => e.event === 'end')
    expect(starts.map((e) => [e.worker, e.attempt])).toEqual([
      ['first', 1],
      ['second', 2],
    ])
    expect(ends.map((e) => [e.worker, e.outcome, e.state])).toEqual([
      ['second', 'returned', 'complete'],
    ])

    // Exactly the two outputs, whole: no temp or partial file beside them.
    expect(await filesUnder(jobDir)).toEqual(
      done.outputs.map((o) => o.storageKey.split('/').pop()).sort(),
    )
    expect(await filesUnder(join(storageRoot, '.tmp'))).toEqual([])
    for (const output of done.outputs) {
      expect(output.state).toBe('complete')
      const media = await probeMedia(join(storageRoot, output.storageKey))
      expect(media.durationSec).toBeCloseTo(60, 0)
    }
    expect(await filesUnder(second.tmpDir)).toEqual([])
    for (const worker of [first, second]) {
      expect(
        (await childrenOf(worker.child.pid!)).filter((c) => c.comm.includes('ffmpeg')),
      ).toEqual([])
    }
    const secondRun = second.events.filter((e) => e.jobId === job.id)
    const runMs = secondRun.at(-1)!.at - secondRun[0]!.at
    // It died well before it could have finished what was left of the run.
    const remainingMs = runMs * (1 - atKill.progress / 100)
    expect(orphanLivedMs).toBeLessThan(Math.min(1500, remainingMs / 2))
    console.info(
      `kill test: killed at ${atKill.progress} %; ffmpeg outlived its worker by ${orphanLivedMs} ms ` +
        `(a whole run takes ${runMs} ms); the job was handed over and completed ${handedOverMs} ms after the kill; ` +
        `files the killed run left in its engine tmpDir: ${JSON.stringify(await filesUnder(first.tmpDir))}`,
    )
  }, 180_000)

  it('shares 20 jobs between two workers, each job run and completed exactly once', async () => {
    const queueName = 'share-test'
    const service = await submitter(queueName)
    const source = await makeTone(join(dir, 'short.wav'), { seconds: 1, format: 'wav' })
    const asset = await service.ingest(createReadStream(source), { filename: 'short.wav' })
    const a = await startWorker('a', queueName)
    const b = await startWorker('b', queueName)

    const jobs = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        service.transcode(asset.id, { presets: ['flac', 'mp3'], idempotencyKey: `share:${i}` }),
      ),
    )
    expect(new Set(jobs.map((j) => j.id)).size).toBe(20)
    const ids = jobs.map((j) => j.id)
    const final = await waitFor(
      async () => Promise.all(ids.map((id) => service.getJob(id))),
      (list) => list.every((j) => j && j.state !== 'submitted' && j.state !== 'progressing'),
      { timeoutMs: 120_000, intervalMs: 250, what: 'all 20 jobs to end' },
    )

    const events = [...a.events, ...b.events]
    const perJob = ids.map((id) => {
      const job = final.find((j) => j?.id === id)!
      const starts = events.filter((e) => e.event === 'start' && e.jobId === id)
      const ends = events.filter((e) => e.event === 'end' && e.jobId === id)
      return {
        id,
        state: job.state,
        attempts: job.attempts,
        ranOn: starts.map((e) => e.worker),
        ends,
      }
    })
    for (const record of perJob) {
      expect(record.state).toBe('complete')
      expect(record.attempts).toBe(1)
      expect(record.ranOn).toHaveLength(1)
      expect(record.ends.map((e) => [e.worker, e.outcome, e.state])).toEqual([
        [record.ranOn[0], 'returned', 'complete'],
      ])
    }
    const byWorker = {
      a: perJob.filter((r) => r.ranOn[0] === 'a').length,
      b: perJob.filter((r) => r.ranOn[0] === 'b').length,
    }
    expect(byWorker.a + byWorker.b).toBe(20)
    expect(byWorker.a).toBeGreaterThan(0)
    expect(byWorker.b).toBeGreaterThan(0)
    // No output was written twice or left half-written.
    const keys = final.flatMap((j) => j!.outputs.map((o) => o.storageKey))
    expect(new Set(keys).size).toBe(40)
    const stored = await filesUnder(storageRoot)
    for (const key of keys) expect(stored).toContain(key)
    console.info(
      `share test: jobs per worker ${JSON.stringify(byWorker)}; per job: ${perJob.map((r) => `${r.id.slice(0, 8)}→${r.ranOn[0]}×${r.attempts}`).join(' ')}`,
    )

    // A graceful stop leaves nothing running.
    for (const worker of [a, b]) {
      worker.child.kill('SIGTERM')
      expect(await worker.exited).toBe(0)
      expect(worker.events.at(-1)?.event).toBe('stopped')
    }
  }, 180_000)
})
