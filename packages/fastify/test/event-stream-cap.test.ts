import { readFile } from 'node:fs/promises'
import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { makeTone } from '@transcodekit/core/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { makeApp, multipart, type TestApp, waitFor } from './helpers.ts'

let test: TestApp | null = null
const requests: ClientRequest[] = []
afterEach(async () => {
  for (const request of requests.splice(0)) request.destroy()
  await test?.close()
  test = null
})

describe('event streams per owner', () => {
  it('are capped: past maxEventStreamsPerOwner, 429 until one closes; other owners unaffected', async () => {
    test = await makeApp({
      worker: false,
      maxEventStreamsPerOwner: 2,
      owner: (request) => String(request.headers['x-owner'] ?? ''),
    })
    const tone = await readFile(
      await makeTone(join(test.dir, 'tone.wav'), { seconds: 1, format: 'wav' }),
    )
    const form = multipart([{ name: 'file', filename: 'tone.wav', data: tone }])
    const upload = async (owner: string) => {
      const made = await test!.app.inject({
        method: 'POST',
        url: '/uploads',
        headers: { ...form.headers, 'x-owner': owner },
        payload: form.payload,
      })
      expect(made.statusCode).toBe(201)
      // No worker: the job waits, and its stream stays open.
      return made.json().job.id as string
    }
    const alices = await upload('alice')
    const bobs = await upload('bob')
    await test.app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = test.app.server.address() as { port: number }
    const open = (job: string, owner: string) =>
      new Promise<{ response: IncomingMessage; request: ClientRequest }>((resolve, reject) => {
        const request = httpRequest({
          host: '127.0.0.1',
          port,
          path: `/jobs/${job}/events`,
          headers: { 'x-owner': owner },
        })
        requests.push(request)
        request.on('response', (response) => resolve({ response, request }))
        request.on('error', reject)
        request.end()
      })
    const body = (response: IncomingMessage) =>
      new Promise<string>((resolve) => {
        let text = ''
        response.on('data', (chunk) => {
          text += chunk
        })
        response.on('end', () => resolve(text))
      })

    const first = await open(alices, 'alice')
    const second = await open(alices, 'alice')
    expect([first.response.statusCode, second.response.statusCode]).toEqual([200, 200])
    const refused = await open(alices, 'alice')
    expect(refused.response.statusCode).toBe(429)
    expect(JSON.parse(await body(refused.response)).code).toBe('TRANSCODEKIT_RATE_LIMITED')
    expect((await open(bobs, 'bob')).response.statusCode).toBe(200)

    // A stream the client closes gives its place back.
    first.request.destroy()
    await waitFor(
      async () => {
        const again = await open(alices, 'alice')
        again.response.resume()
        return again.response.statusCode === 200
      },
      10_000,
      'a place for a new stream',
    )
  })
})
