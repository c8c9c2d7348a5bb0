import { openAsBlob } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import SwaggerParser from '@apidevtools/swagger-parser'
import { makeTone } from '@transcodekit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../src/config.ts'
import {
  type RunningServer,
  runExampleWorker,
  startExampleServer,
  startServer,
} from './server-process.ts'

describe('loadConfig', () => {
  it('starts from embedded defaults with nothing set', () => {
    const config = loadConfig({})
    expect(config).toMatchObject({
      port: 3000,
      host: 'localhost',
      databaseUrl: null,
      apiPrefix: '/api',
      worker: true,
      databaseSchema: 'transcodekit',
      queueSchema: 'pgboss',
      pgliteSharedBuffers: '16MB',
      storage: { kind: 'local' },
      engine: { kind: 'ffmpeg' },
      snsTopicArns: [],
    })
    // `transcodekit serve` keeps its data next to where it runs; `pnpm start` passes its own.
    expect(config.dataDir).toBe(resolve('.transcodekit'))
    expect(loadConfig({}, { dataDir: '/srv/media' }).dataDir).toBe('/srv/media')
    expect(loadConfig({ DATA_DIR: 'here' }, { dataDir: '/srv/media' }).dataDir).toBe(
      resolve('here'),
    )
  })

  it('names every bad variable at once', () => {
    let error: unknown
    try {
      loadConfig({
        PORT: 'eighty',
        MAX_UPLOAD_BYTES: '-1',
        STORAGE: 'ftp',
        ENGINE: 'mediaconvert',
        DATABASE_URL: 'mysql://x',
        SNS_TOPIC_ARNS: 'not-an-arn',
        WORKER: 'maybe',
        DATABASE_SCHEMA: 'Bad-Schema',
        PGLITE_SHARED_BUFFERS: 'lots',
        FILE_URL_SECRET: 'too short',
      })
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(ConfigError)
    const message = (error as ConfigError).message
    for (const name of [
      'PORT',
      'MAX_UPLOAD_BYTES',
      'STORAGE',
      'MEDIACONVERT_ROLE',
      'DATABASE_URL',
      'SNS_TOPIC_ARNS',
      'WORKER',
      'DATABASE_SCHEMA',
      'PGLITE_SHARED_BUFFERS',
      'FILE_URL_SECRET',
      'STORAGE=s3',
    ]) {
      expect(message).toContain(name)
    }
  })

  it('reads the S3 and Elastic Transcoder settings', () => {
    const config = loadConfig({
      STORAGE: 's3',
      S3_BUCKET: 'media',
      S3_ENDPOINT: 'http://127.0.0.1:4568',
      S3_FORCE_PATH_STYLE: 'true',
      S3_PREFIX: 'uploads/',
      ENGINE: 'elastic-transcoder',
      ET_PIPELINE_NAME: 'my-pipeline',
      ET_ENDPOINT: 'http://127.0.0.1:4569',
      SNS_TOPIC_ARNS: 'arn:aws:sns:us-east-1:123456789012:transcoder',
    })
    expect(config.storage).toEqual({
      kind: 's3',
      bucket: 'media',
      endpoint: 'http://127.0.0.1:4568',
      region: 'us-east-1',
      forcePathStyle: true,
      prefix: 'uploads/',
    })
    expect(config.engine).toEqual({
      kind: 'elastic-transcoder',
      pipelineName: 'my-pipeline',
      endpoint: 'http://127.0.0.1:4569',
      region: 'us-east-1',
    })
    expect(config.snsTopicArns).toEqual(['arn:aws:sns:us-east-1:123456789012:transcoder'])
  })
})

describe('the example server process', () => {
  let dataDir: string
  let server: RunningServer | null = null
  let mp3: string

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'transcodekit-example-'))
    mp3 = await makeTone(join(dataDir, 'tone.mp3'), { seconds: 2, format: 'mp3' })
  })
  afterAll(async () => {
    await server?.stop('SIGKILL')
    await rm(dataDir, { recursive: true, force: true })
  })

  it('refuses to start with a readable message when the environment is wrong', async () => {
    const failure = await startServer(
      { DATA_DIR: join(dataDir, 'data'), PORT: 'x', ENGINE: 'nope' },
      20_000,
    ).catch((error: Error) => error)
    expect(failure).toBeInstanceOf(Error)
    for (const text of ['exited with 1', 'PORT must be an integer', 'ENGINE must be one of']) {
      expect((failure as Error).message).toContain(text)
    }
  })

  it('serves the page and the docs, resumes an unfinished job after a restart, keeps its data in PGlite', async () => {
    const env = { DATA_DIR: join(dataDir, 'data') }
    // An API-only process: the job waits.
    server = await startServer({ ...env, WORKER: 'false' })
    const page = await fetch(`${server.url}/`)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('<title>transcodekit')
    expect((await fetch(`${server.url}/docs`)).status).toBeLessThan(400)
    const document = await (await fetch(`${server.url}/docs/json`)).json()
    await SwaggerParser.validate(structuredClone(document))
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/api/uploads', '/api/jobs/{id}/events', '/api/files/{*}']),
    )
    expect(await (await fetch(`${server.url}/openapi.json`)).json()).toEqual(document)

    const form = new FormData()
    form.append('presets', 'wav')
    form.append('file', await openAsBlob(mp3, { type: 'audio/mpeg' }), 'tone.mp3')
    const created = await fetch(`${server.url}/api/uploads`, { method: 'POST', body: form })
    expect(created.status).toBe(201)
    const { asset, job } = await created.json()
    expect(job.state).toBe('submitted')
    expect(await server.stop('SIGTERM')).toBe(0)
    expect(server.output()).toContain('shutting down')

    // The next start hands the job to its worker; the asset is still there.
    server = await startServer(env)
    expect(server.output()).toMatch(/"resumed":1/)
    const deadline = Date.now() + 30_000
    let current = job
    while (current.state !== 'complete' && Date.now() < deadline) {
      const response = await fetch(`${server.url}/api/jobs/${job.id}/events`)
      const text = await response.text()
      const blocks = text.split('\n\n').filter((block) => block.includes('data: '))
      current = JSON.parse(blocks.at(-1)!.split('data: ')[1]!)
    }
    expect(current.state).toBe('complete')
    const assets = await (await fetch(`${server.url}/api/assets`)).json()
    expect(assets.items.map((a: { id: string }) => a.id)).toEqual([asset.id])
    const wav = await fetch(`${server.url}${current.outputs[0].url}`)
    expect(wav.status).toBe(200)
    expect(wav.headers.get('content-type')).toBe('audio/wav')
    expect((await wav.arrayBuffer()).byteLength).toBe(current.outputs[0].size)
    const code = await server.stop('SIGTERM')
    expect(code, server.output().slice(-3000)).toBe(0)
    server = null
    // Nothing half-written stays in the upload spool.
    expect(await readdir(join(dataDir, 'data', 'tmp', 'uploads')).catch(() => [])).toEqual([])
  }, 240_000)

  it('runs as `pnpm start` from examples/server, the thin wrapper over serve', async () => {
    const example = await startExampleServer({
      DATA_DIR: join(dataDir, 'example'),
      DATABASE_URL: 'memory://',
    })
    try {
      const page = await fetch(`${example.url}/`)
      expect(page.status).toBe(200)
      expect(await page.text()).toContain('<title>transcodekit')
      expect(await example.stop('SIGTERM')).toBe(0)
    } finally {
      await example.stop('SIGKILL')
    }
  })

  it('runs `pnpm worker` from examples/server, the thin wrapper over worker', async () => {
    // memory:// belongs to one process: the worker's own check answers, so its code ran.
    const { code, output } = await runExampleWorker({
      DATA_DIR: join(dataDir, 'example-worker'),
      DATABASE_URL: 'memory://',
    })
    expect(code).toBe(1)
    expect(output).toContain('DATABASE_URL=memory:// is not shared between processes')
  })
})
