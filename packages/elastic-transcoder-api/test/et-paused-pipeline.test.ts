import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  CancelJobCommand,
  CreateJobCommand,
  CreatePipelineCommand,
  type ElasticTranscoderClient,
  paginateListJobsByStatus,
  ReadJobCommand,
  UpdatePipelineStatusCommand,
  waitUntilJobComplete,
} from '@aws-sdk/client-elastic-transcoder'
import {
  createTranscoder,
  ffmpegEngine,
  localStorage,
  memoryRepository,
  type TranscodeService,
} from '@transcodekit/core'
import { makeTone } from '@transcodekit/core/testing'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { type EtStore, memoryEtStore } from '../src/index.ts'
import { ALICE, etClient, startEtApp } from './et-test-app.ts'

const WAV = '1351620000001-300300'

let dir: string
let service: TranscodeService
// The ET store outlives each app: a restarted server reads the jobs its predecessor held.
const store: EtStore = memoryEtStore()
let song: Buffer

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-et-paused-'))
  service = createTranscoder({
    storage: localStorage({ root: join(dir, 'server') }),
    engine: ffmpegEngine(),
    repository: memoryRepository(),
  })
  song = await readFile(await makeTone(join(dir, 'song.mp3'), { seconds: 1, format: 'mp3' }))
  await mkdir(join(dir, 'in'), { recursive: true })
})

afterAll(async () => {
  await service?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** A server of the API on the shared store and service, as `transcodekit serve` mounts it. */
function startServer(): Promise<{ app: FastifyInstance; endpoint: string }> {
  return startEtApp({
    service,
    store,
    syncIntervalMs: 50,
    buckets: {
      in: localStorage({ root: join(dir, 'in'), keyRule: 'bucket' }),
      out: localStorage({ root: join(dir, 'out'), keyRule: 'bucket' }),
    },
  })
}

async function pausedPipeline(client: ElasticTranscoderClient, name: string): Promise<string> {
  const { Pipeline } = await client.send(
    new CreatePipelineCommand({
      Name: name,
      InputBucket: 'in',
      OutputBucket: 'out',
      Role: 'arn:aws:iam::123456789012:role/Elastic_Transcoder_Default_Role',
    }),
  )
  const id = Pipeline?.Id as string
  const { Pipeline: paused } = await client.send(
    new UpdatePipelineStatusCommand({ Id: id, Status: 'Paused' }),
  )
  expect(paused?.Status).toBe('Paused')
  return id
}

async function createJob(client: ElasticTranscoderClient, pipelineId: string, name: string) {
  await writeFile(join(dir, 'in', `${name}.mp3`), song)
  const { Job } = await client.send(
    new CreateJobCommand({
      PipelineId: pipelineId,
      Input: { Key: `${name}.mp3` },
      Outputs: [{ Key: `${name}.wav`, PresetId: WAV }],
    }),
  )
  expect(Job?.Status).toBe('Submitted')
  return Job?.Id as string
}

async function statusOf(client: ElasticTranscoderClient, id: string) {
  return (await client.send(new ReadJobCommand({ Id: id }))).Job?.Status
}

/** The core job the service runs for an ET job, if it was ever started. */
function coreJobOf(etJobId: string) {
  return service.repository.getJobByIdempotencyKey(`elastic-transcoder:${etJobId}`, ALICE.owner)
}

function resume(client: ElasticTranscoderClient, id: string) {
  return client.send(new UpdatePipelineStatusCommand({ Id: id, Status: 'Active' }))
}

describe('a paused pipeline', () => {
  it('holds its jobs Submitted, across a restart, and runs each once when Active again', async () => {
    const first = await startServer()
    let second: Awaited<ReturnType<typeof startServer>> | null = null
    try {
      const client = etClient(first.endpoint)
      const pipelineId = await pausedPipeline(client, 'Held')
      const id = await createJob(client, pipelineId, 'held one')
      // Every read brings a job up to date, and the sweep runs every 50 ms: neither starts it.
      for (let read = 0; read < 3; read++) expect(await statusOf(client, id)).toBe('Submitted')
      const submitted: string[] = []
      for await (const page of paginateListJobsByStatus({ client }, { Status: 'Submitted' })) {
        submitted.push(...(page.Jobs ?? []).map((j) => j.Id as string))
      }
      expect(submitted).toContain(id)
      expect(await coreJobOf(id)).toBeNull()

      // The server restarts; another one resumes the pipeline.
      await first.app.close()
      second = await startServer()
      const after = etClient(second.endpoint)
      expect(await statusOf(after, id)).toBe('Submitted')
      expect((await resume(after, pipelineId)).Pipeline?.Status).toBe('Active')
      await waitUntilJobComplete(
        { client: after, maxWaitTime: 60, minDelay: 1, maxDelay: 1 },
        { Id: id },
      )
      // Run once: one output written (a second run would find its key taken and fail the
      // job with 3002), and the server's copy of the job deleted once it ended.
      const written = (await readdir(join(dir, 'out'))).filter((name) => !name.startsWith('.'))
      expect(written).toEqual(['held one.wav'])
      expect(await coreJobOf(id)).toBeNull()
      expect((await service.repository.listAssets({ limit: 10 })).items).toEqual([])
    } finally {
      if (second) await second.app.close()
      else await first.app.close()
    }
  })

  it('lets CancelJob cancel a held job, which never starts', async () => {
    const server = await startServer()
    try {
      const client = etClient(server.endpoint)
      const pipelineId = await pausedPipeline(client, 'Canceled')
      const canceled = await createJob(client, pipelineId, 'canceled')
      const kept = await createJob(client, pipelineId, 'kept')
      await client.send(new CancelJobCommand({ Id: canceled }))
      expect(await statusOf(client, canceled)).toBe('Canceled')
      await resume(client, pipelineId)
      // Held jobs start oldest first: once the later one is done, the canceled one was passed.
      await waitUntilJobComplete(
        { client, maxWaitTime: 60, minDelay: 1, maxDelay: 1 },
        { Id: kept },
      )
      expect(await statusOf(client, canceled)).toBe('Canceled')
      expect(await coreJobOf(canceled)).toBeNull()
      expect(await readdir(join(dir, 'out'))).not.toContain('canceled.wav')
    } finally {
      await server.app.close()
    }
  })

  it('ends a held job in Error 3001 when its input is gone by the time it resumes', async () => {
    const server = await startServer()
    try {
      const client = etClient(server.endpoint)
      const pipelineId = await pausedPipeline(client, 'Gone')
      const id = await createJob(client, pipelineId, 'gone')
      await rm(join(dir, 'in', 'gone.mp3'))
      await resume(client, pipelineId)
      await vi.waitFor(async () => expect(await statusOf(client, id)).toBe('Error'), {
        timeout: 20_000,
        interval: 100,
      })
      const { Job } = await client.send(new ReadJobCommand({ Id: id }))
      expect(Job?.Outputs?.[0]?.StatusDetail).toMatch(/^3001 .*key=gone\.mp3/)
      expect(await coreJobOf(id)).toBeNull()
    } finally {
      await server.app.close()
    }
  })
})
