import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { makeTone, openEventStream, type SseStream } from '@transcodekit/core/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { makeApp, multipart, type TestApp } from './helpers.ts'

let test: TestApp | null = null
const streams: SseStream[] = []
afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close()
  await test?.close()
  test = null
})

/** An API without a worker, one job waiting in it, listening on a port. */
async function waitingJob(): Promise<{ base: string; jobId: string }> {
  test = await makeApp({ worker: false })
  const tone = await readFile(
    await makeTone(join(test.dir, 'tone.wav'), { seconds: 1, format: 'wav' }),
  )
  const form = multipart([{ name: 'file', filename: 'tone.wav', data: tone }])
  const made = await test.app.inject({
    method: 'POST',
    url: '/uploads?presets=wav',
    headers: form.headers,
    payload: form.payload,
  })
  expect(made.statusCode).toBe(201)
  await test.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = test.app.server.address() as { port: number }
  return { base: `http://127.0.0.1:${port}`, jobId: made.json().job.id }
}

async function open(url: string, headers: Record<string, string> = {}) {
  const stream = await openEventStream(url, headers)
  streams.push(stream)
  return stream
}

describe('GET /jobs/:id/events with Last-Event-ID', () => {
  it('a client that reconnects gets what changed while it was away, then nothing twice', async () => {
    const { base, jobId } = await waitingJob()
    const url = `${base}/jobs/${jobId}/events`
    const first = await open(url)
    const submitted = await first.next()
    expect(JSON.parse(submitted!.data)).toMatchObject({ id: jobId, state: 'submitted' })
    expect(submitted!.id).toMatch(/^[\w-]{16}$/)
    first.close()

    // The job ends while the client is away.
    await test!.service.cancel(jobId)

    const again = await open(url, { 'last-event-id': submitted!.id! })
    expect(again.response.statusCode).toBe(200)
    const missed = await again.next()
    expect(JSON.parse(missed!.data)).toMatchObject({ id: jobId, state: 'canceled' })
    expect(missed!.id).not.toBe(submitted!.id)
    expect(await again.next()).toBeNull()

    // Reconnecting with the end's id: 204, which tells EventSource to stop reconnecting.
    const done = await open(url, { 'last-event-id': missed!.id! })
    expect(done.response.statusCode).toBe(204)
    expect(await done.next()).toBeNull()
  })

  it('a client that is up to date gets no copy of what it has, only the next change', async () => {
    const { base, jobId } = await waitingJob()
    const url = `${base}/jobs/${jobId}/events`
    const first = await open(url)
    const submitted = await first.next()
    first.close()

    const again = await open(url, { 'last-event-id': submitted!.id! })
    expect(again.response.statusCode).toBe(200)
    const next = again.next()
    await test!.service.cancel(jobId)
    const event = await next
    expect(JSON.parse(event!.data)).toMatchObject({ state: 'canceled' })
    expect(await again.next()).toBeNull()
  })

  it('an id that is not one of ours (or too long) is a fresh start: the current job first', async () => {
    const { base, jobId } = await waitingJob()
    const url = `${base}/jobs/${jobId}/events`
    for (const id of ['nonsense', 'x'.repeat(5000)]) {
      const stream = await open(url, { 'last-event-id': id })
      expect(stream.response.statusCode).toBe(200)
      expect(JSON.parse((await stream.next())!.data)).toMatchObject({ state: 'submitted' })
      stream.close()
    }
  })
})
