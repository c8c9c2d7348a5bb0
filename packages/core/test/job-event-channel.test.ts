import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createTranscoder,
  ffmpegEngine,
  inProcessJobEvents,
  inProcessQueue,
  type Job,
  type JobEvent,
  type JobEventChannel,
  type Logger,
  localStorage,
  memoryRepository,
  type Queue,
  type Repository,
  type TranscodeService,
} from '../src/index.ts'
import { makeTone } from '../src/testing/index.ts'

let dir: string
const services: TranscodeService[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-job-events-'))
})
afterEach(async () => {
  for (const service of services.splice(0)) await service.close()
  await rm(dir, { recursive: true, force: true })
})

/**
 * Two services on one repository and queue, as an API process and a worker process are on one
 * database: `api` never runs jobs, `worker` does.
 */
function pair(channels: { api: JobEventChannel; worker: JobEventChannel }, logger?: Logger) {
  const repository: Repository = memoryRepository()
  const queue: Queue = inProcessQueue()
  const common = {
    storage: localStorage({ root: join(dir, 'files') }),
    engine: ffmpegEngine({ tmpDir: join(dir, 'engine-tmp') }),
    repository,
    queue,
    tmpDir: join(dir, 'spool'),
    // The watchers' own re-read is far away: only the channel can bring changes in time.
    watchIntervalMs: 600_000,
    logger,
  }
  const api = createTranscoder({ ...common, worker: false, jobEvents: channels.api })
  const worker = createTranscoder({ ...common, jobEvents: channels.worker })
  services.push(api, worker)
  return { api, worker }
}

async function submit(api: TranscodeService): Promise<Job> {
  const tone = await makeTone(join(dir, 'tone.wav'), { seconds: 3, format: 'wav' })
  const asset = await api.ingest(createReadStream(tone), { filename: 'tone.wav' })
  return api.transcode(asset.id, { presets: ['flac'] })
}

describe('job events between services (jobEvents)', () => {
  it("a service's subscribers and watchers see the jobs another service runs, to their end", async () => {
    const channel = inProcessJobEvents()
    const { api } = pair({ api: channel, worker: channel })
    const seen: JobEvent[] = []
    api.subscribe((event) => seen.push(event))
    const job = await submit(api)
    const watched: Job[] = []
    for await (const update of api.watch(job.id)) watched.push(update)
    expect(watched.at(-1)).toMatchObject({ id: job.id, state: 'complete', progress: 100 })
    expect(watched[0]!.state).toBe('submitted')
    expect(watched.length).toBeGreaterThan(1)
    const ofJob = seen.filter((e) => e.job.id === job.id)
    const states = ofJob.map((e) => e.job.state)
    expect(states[0]).toBe('submitted')
    expect(states.at(-1)).toBe('complete')
    expect(states).toContain('progressing')
    // The api made the job; every change after it came from the worker.
    expect(ofJob.map((e) => e.remote ?? false)).toEqual([false, ...ofJob.slice(1).map(() => true)])
  }, 60_000)

  it('without a shared channel, a service sees only what it does itself', async () => {
    const { api, worker } = pair({ api: inProcessJobEvents(), worker: inProcessJobEvents() })
    const apiSaw: string[] = []
    api.subscribe((event) => apiSaw.push(event.job.state))
    const ended = new Promise<void>((resolve) =>
      worker.subscribe((event) => {
        if (event.job.state === 'complete') resolve()
      }),
    )
    await submit(api)
    await ended
    expect(apiSaw).toEqual(['submitted'])
  }, 60_000)

  it('a subscriber of this process only sees its own changes, with the channel shared', async () => {
    const channel = inProcessJobEvents()
    const { api, worker } = pair({ api: channel, worker: channel })
    const here: string[] = []
    api.subscribe((event) => here.push(event.job.state), { remote: false })
    const ended = new Promise<void>((resolve) =>
      api.subscribe((event) => {
        if (event.job.state === 'complete') resolve()
      }),
    )
    const job = await submit(api)
    await ended
    expect(here).toEqual(['submitted'])
    expect((await worker.getJob(job.id)).state).toBe('complete')
  }, 60_000)

  it('a channel that cannot publish is logged with the job, and the job still completes', async () => {
    const warnings: Array<Record<string, unknown>> = []
    const logger: Logger = {
      info: () => {},
      error: () => {},
      warn: ((fields: Record<string, unknown>, message?: string) => {
        if (message?.includes('could not publish')) warnings.push(fields)
      }) as Logger['warn'],
    }
    const broken: JobEventChannel = {
      publish: async () => {
        throw new Error('connection refused')
      },
      subscribe: () => () => {},
      close: async () => {},
    }
    const { api } = pair({ api: broken, worker: broken }, logger)
    const job = await submit(api)
    const done = await waitForState(api, job.id, 'complete')
    expect(done.state).toBe('complete')
    expect(warnings.length).toBeGreaterThan(0)
    expect(warnings[0]).toMatchObject({ jobId: job.id, error: 'connection refused' })
  }, 60_000)
})

async function waitForState(service: TranscodeService, id: string, state: string): Promise<Job> {
  const deadline = Date.now() + 50_000
  for (;;) {
    const job = await service.getJob(id)
    if (job.state === state || Date.now() > deadline) return job
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
