import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Hash } from '@smithy/hash-node'
import { SignatureV4 } from '@smithy/signature-v4'
import { createTranscoder, ffmpegEngine, localStorage, memoryRepository } from '@transcodekit/core'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ALICE, startEtApp } from './et-test-app.ts'

// Requests signed by hand with the SDKs' signer, then changed on the way, as an attacker would.
let dir: string
let app: FastifyInstance
let service: ReturnType<typeof createTranscoder>

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-et-sigv4-'))
  const storage = localStorage({ root: join(dir, 'files') })
  service = createTranscoder({
    storage,
    engine: ffmpegEngine(),
    repository: memoryRepository(),
    worker: false,
  })
  ;({ app } = await startEtApp({ service, buckets: { media: storage }, bodyLimit: 1024 }))
})

afterAll(async () => {
  await app?.close()
  await service?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

async function signed(
  method: string,
  path: string,
  body?: string,
  options: { date?: Date; service?: string; headers?: Record<string, string> } = {},
) {
  const signer = new SignatureV4({
    service: options.service ?? 'elastictranscoder',
    region: 'us-east-1',
    credentials: ALICE,
    sha256: Hash.bind(null, 'sha256'),
  })
  const request = await signer.sign(
    {
      method,
      protocol: 'http:',
      hostname: 'localhost:80',
      path,
      query: {},
      headers: {
        host: 'localhost:80',
        ...(body ? { 'content-type': 'application/json' } : {}),
        ...options.headers,
      },
      body,
    },
    { signingDate: options.date ?? new Date() },
  )
  return request.headers as Record<string, string>
}

const PIPELINE = JSON.stringify({
  Name: 'Audio Files',
  InputBucket: 'media',
  OutputBucket: 'media',
  Role: 'arn:aws:iam::123456789012:role/Transcoder',
})

function errorOf(response: {
  statusCode: number
  headers: Record<string, unknown>
  json(): unknown
}) {
  return {
    status: response.statusCode,
    type: String(response.headers['x-amzn-errortype']).split(':')[0],
    body: response.json(),
  }
}

describe('SigV4 verification', () => {
  it('accepts a request signed by the SDKs signer', async () => {
    const headers = await signed('POST', '/2012-09-25/pipelines', PIPELINE)
    const response = await app.inject({
      method: 'POST',
      url: '/2012-09-25/pipelines',
      headers,
      payload: PIPELINE,
    })
    expect(response.statusCode).toBe(201)
  })

  it('refuses a body changed after signing, and a lying x-amz-content-sha256', async () => {
    const headers = await signed('POST', '/2012-09-25/pipelines', PIPELINE)
    const changed = PIPELINE.replace('Audio Files', 'Other Files')
    const response = await app.inject({
      method: 'POST',
      url: '/2012-09-25/pipelines',
      headers,
      payload: changed,
    })
    expect(errorOf(response)).toMatchObject({ status: 403, type: 'InvalidSignatureException' })

    const claimed = createHash('sha256').update(PIPELINE).digest('hex')
    const lying = await signed('POST', '/2012-09-25/pipelines', PIPELINE, {
      headers: { 'x-amz-content-sha256': claimed },
    })
    const swapped = await app.inject({
      method: 'POST',
      url: '/2012-09-25/pipelines',
      headers: lying,
      payload: changed,
    })
    expect(errorOf(swapped)).toMatchObject({ status: 403, type: 'InvalidSignatureException' })
  })

  it('refuses a request signed more than 15 minutes away, or for another service', async () => {
    const old = await signed('GET', '/2012-09-25/pipelines', undefined, {
      date: new Date(Date.now() - 16 * 60_000),
    })
    const response = await app.inject({ url: '/2012-09-25/pipelines', headers: old })
    expect(errorOf(response)).toMatchObject({ status: 403, type: 'InvalidSignatureException' })
    expect((errorOf(response).body as { message: string }).message).toMatch(/^Signature expired/)

    const s3 = await signed('GET', '/2012-09-25/pipelines', undefined, { service: 's3' })
    expect(errorOf(await app.inject({ url: '/2012-09-25/pipelines', headers: s3 }))).toMatchObject({
      status: 403,
      type: 'InvalidSignatureException',
    })
  })

  it('refuses an unsigned request, and a path other than the signed one', async () => {
    expect(errorOf(await app.inject({ url: '/2012-09-25/pipelines' }))).toMatchObject({
      status: 403,
      type: 'MissingAuthenticationTokenException',
    })
    const headers = await signed('GET', '/2012-09-25/pipelines')
    expect(errorOf(await app.inject({ url: '/2012-09-25/presets', headers }))).toMatchObject({
      status: 403,
      type: 'InvalidSignatureException',
    })
  })

  it('bounds the body before reading it into memory, and refuses what is not JSON', async () => {
    const big = JSON.stringify({ Name: 'x'.repeat(2048) })
    const headers = await signed('POST', '/2012-09-25/pipelines', big)
    expect(
      errorOf(
        await app.inject({ method: 'POST', url: '/2012-09-25/pipelines', headers, payload: big }),
      ),
    ).toMatchObject({ status: 400, type: 'ValidationException' })
    const notJson = '{"Name":'
    const bad = await signed('POST', '/2012-09-25/pipelines', notJson)
    expect(
      errorOf(
        await app.inject({
          method: 'POST',
          url: '/2012-09-25/pipelines',
          headers: bad,
          payload: notJson,
        }),
      ),
    ).toMatchObject({ status: 400, type: 'ValidationException' })
  })
})
