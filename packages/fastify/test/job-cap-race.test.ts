import { readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { filesUnder, makeTone } from '@transcodekit/core/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { makeApp, multipart, type TestApp, waitFor } from './helpers.ts'

let test: TestApp | null = null
afterEach(async () => {
  await test?.close()
  test = null
})

describe('the cap on waiting plus running jobs per owner', () => {
  it('counts an upload still streaming: a second upload started meanwhile is refused', async () => {
    test = await makeApp({
      worker: false,
      maxActiveJobsPerOwner: 1,
      owner: (request) => String(request.headers['x-owner'] ?? ''),
    })
    const tone = await readFile(
      await makeTone(join(test.dir, 'tone.wav'), { seconds: 1, format: 'wav' }),
    )
    const form = multipart([{ name: 'file', filename: 'tone.wav', data: tone }])
    await test.app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = test.app.server.address() as { port: number }

    // The first upload sends half its body and waits: it is past the cap's check, and its
    // job does not exist yet.
    const first = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/uploads',
      headers: {
        ...form.headers,
        'content-length': form.payload.length,
        'x-owner': 'alice',
        'idempotency-key': 'first',
      },
    })
    const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
      first.on('response', (response) => {
        let body = ''
        response.on('data', (chunk) => {
          body += chunk
        })
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }))
      })
      first.on('error', reject)
    })
    const half = Math.floor(form.payload.length / 2)
    first.write(form.payload.subarray(0, half))
    const tmpDir = test.tmpDir
    await waitFor(async () => (await filesUnder(tmpDir)).length > 0, 10_000, 'the spool')

    const second = await test.app.inject({
      method: 'POST',
      url: '/uploads',
      headers: { ...form.headers, 'x-owner': 'alice' },
      payload: form.payload,
    })
    expect(second.statusCode).toBe(429)
    expect(second.json().code).toBe('TRANSCODEKIT_TOO_MANY_JOBS')
    // Another owner is not held back by Alice's upload.
    const bobs = await test.app.inject({
      method: 'POST',
      url: '/uploads',
      headers: { ...form.headers, 'x-owner': 'bob' },
      payload: form.payload,
    })
    expect(bobs.statusCode).toBe(201)

    // The same request again (its idempotency key) makes the same job: not refused for room.
    const again = await test.app.inject({
      method: 'POST',
      url: '/uploads',
      headers: { ...form.headers, 'x-owner': 'alice', 'idempotency-key': 'first' },
      payload: form.payload,
    })
    expect(again.statusCode).toBe(201)

    first.end(form.payload.subarray(half))
    const answer = await answered
    expect(answer.status).toBe(201)
    expect(JSON.parse(answer.body).job.id).toBe(again.json().job.id)
    expect((await test.service.listJobs({ owner: 'alice' })).items).toHaveLength(1)
    // Once its job exists, the upload no longer counts twice: still one job, still refused.
    const third = await test.app.inject({
      method: 'POST',
      url: '/uploads',
      headers: { ...form.headers, 'x-owner': 'alice' },
      payload: form.payload,
    })
    expect(third.json().code).toBe('TRANSCODEKIT_TOO_MANY_JOBS')
  })
})
