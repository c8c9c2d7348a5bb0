import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import swagger from '@fastify/swagger'
import {
  createTranscoder,
  ffmpegEngine,
  localStorage,
  memoryRepository,
  type NotificationVerifier,
  type Repository,
  type TranscoderOptions,
  type TranscodeService,
} from '@transcodekit/core'
import { filesUnder } from '@transcodekit/core/testing'
import Fastify, { type FastifyInstance } from 'fastify'
import transcodekit, { type TranscodekitPluginOptions, type UploadLimits } from '../src/index.ts'

export interface TestApp {
  app: FastifyInstance
  service: TranscodeService
  dir: string
  storageRoot: string
  tmpDir: string
  /** Everything that could be left behind: stored files, spooled files, rows. */
  snapshot(): Promise<Snapshot>
  close(): Promise<void>
}

export interface Snapshot {
  files: string[]
  tmp: string[]
  assets: string[]
  jobs: string[]
}

export interface TestAppOptions {
  prefix?: string
  limits?: UploadLimits
  notifications?: NotificationVerifier
  /** Run jobs in this process. @default true */
  worker?: boolean
  /** Where rows go. @default memoryRepository() */
  repository?: Repository
  owner?: TranscodekitPluginOptions['owner']
  authorize?: TranscodekitPluginOptions['authorize']
  openapiSecurity?: TranscodekitPluginOptions['openapiSecurity']
  maxActiveJobsPerOwner?: number
  /** Signs the file URLs. @default a random secret */
  fileUrlSecret?: string
  /** Adds the app's own routes before it starts. */
  setup?: (app: FastifyInstance) => void
  uploadIdleTimeoutMs?: number
  maxEventStreamsPerOwner?: number
  /** Folder to make the app's folder in (a small file system). @default os tmpdir */
  parentDir?: string
  /** The service's webhooks. @default none */
  webhooks?: TranscoderOptions['webhooks']
}

/** An app per test: local storage and a spool folder in a fresh temp folder, memory rows. */
export async function makeApp(options: TestAppOptions = {}): Promise<TestApp> {
  const dir = await mkdtemp(join(options.parentDir ?? tmpdir(), 'transcodekit-fastify-'))
  const storageRoot = join(dir, 'files')
  const tmpDir = join(dir, 'tmp')
  await mkdir(tmpDir, { recursive: true })
  const prefix = options.prefix ?? ''
  const repository = options.repository ?? memoryRepository()
  const service = createTranscoder({
    storage: localStorage({ root: storageRoot, baseUrl: `${prefix}/files/` }),
    engine: ffmpegEngine(),
    repository,
    tmpDir,
    worker: options.worker === false ? false : { concurrency: 1 },
    pollIntervalMs: 200,
    webhooks: options.webhooks,
  })
  const app = Fastify({ logger: false })
  await app.register(swagger, {
    openapi: { openapi: '3.1.0', info: { title: 'transcodekit test', version: '0.0.0' } },
  })
  await app.register(transcodekit, {
    service,
    prefix,
    limits: options.limits,
    notifications: options.notifications,
    owner: options.owner,
    authorize: options.authorize,
    openapiSecurity: options.openapiSecurity,
    maxActiveJobsPerOwner: options.maxActiveJobsPerOwner,
    fileUrlSecret: options.fileUrlSecret,
    uploadIdleTimeoutMs: options.uploadIdleTimeoutMs,
    maxEventStreamsPerOwner: options.maxEventStreamsPerOwner,
  })
  options.setup?.(app)
  await app.ready()
  return {
    app,
    service,
    dir,
    storageRoot,
    tmpDir,
    async snapshot() {
      const assets = await repository.listAssets({ limit: 100 })
      const jobs = await repository.listJobs({ limit: 100 })
      return {
        // The storage's own bookkeeping folder for in-flight writes counts as left behind too.
        files: await filesUnder(storageRoot),
        tmp: await filesUnder(tmpDir),
        assets: assets.items.map((asset) => asset.id).sort(),
        jobs: jobs.items.map((job) => job.id).sort(),
      }
    },
    async close() {
      await app.close()
      await service.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

export type Part =
  | { name: string; value: string }
  | { name: string; filename: string; contentType?: string; data: Buffer }

/** A multipart/form-data body, parts in the order given. */
export function multipart(
  parts: Part[],
  boundary = `----transcodekit${randomBytes(8).toString('hex')}`,
) {
  const chunks: Buffer[] = []
  for (const part of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\n`))
    if ('value' in part) {
      chunks.push(
        Buffer.from(`Content-Disposition: form-data; name="${part.name}"\r\n\r\n${part.value}\r\n`),
      )
    } else {
      chunks.push(
        Buffer.from(
          `Content-Disposition: form-data; name="${part.name}"; filename="${part.filename}"\r\n` +
            `Content-Type: ${part.contentType ?? 'application/octet-stream'}\r\n\r\n`,
        ),
        part.data,
        Buffer.from('\r\n'),
      )
    }
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return {
    payload: Buffer.concat(chunks),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    boundary,
  }
}

/** Polls until `check` returns a value, at most `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | null | undefined | false>,
  timeoutMs = 30_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Parses a `text/event-stream` body into its events. */
export function parseEvents(text: string): Array<{ event: string; data: string }> {
  return text
    .split('\n\n')
    .map((block) => {
      let event = 'message'
      const data: string[] = []
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7)
        else if (line.startsWith('data: ')) data.push(line.slice(6))
      }
      return { event, data: data.join('\n') }
    })
    .filter((entry) => entry.data !== '')
}
