import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import SwaggerParser from '@apidevtools/swagger-parser'
import { makeTone, makeVideo } from '@transcodekit/core/testing'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { FileUrlSigner } from '../src/index.ts'
import { makeApp, multipart, parseEvents, type TestApp, waitFor } from './helpers.ts'

let fixtures: string
let tone: Buffer

beforeAll(async () => {
  fixtures = await mkdtemp(join(tmpdir(), 'transcodekit-fastify-fixtures-'))
  tone = await readFile(await makeTone(join(fixtures, 'tone.mp3'), { seconds: 2, format: 'mp3' }))
})
afterAll(async () => {
  await rm(fixtures, { recursive: true, force: true })
})

let t: TestApp
afterEach(async () => {
  await t?.close()
})

function upload(
  app: TestApp['app'],
  presets: string[],
  options: { key?: string; filename?: string; prefix?: string; data?: Buffer } = {},
) {
  const body = multipart([
    ...presets.map((value) => ({ name: 'presets', value })),
    {
      name: 'file',
      filename: options.filename ?? 'tone.mp3',
      contentType: 'audio/mpeg',
      data: options.data ?? tone,
    },
  ])
  return app.inject({
    method: 'POST',
    url: `${options.prefix ?? ''}/uploads`,
    headers: { ...body.headers, ...(options.key ? { 'idempotency-key': options.key } : {}) },
    payload: body.payload,
  })
}

describe('POST /uploads and GET /jobs/:id', () => {
  it('stores the file, creates the job, answers 201 with a Location, and the job completes', async () => {
    t = await makeApp({ prefix: '/media' })
    const res = await upload(t.app, ['wav', 'flac'], { prefix: '/media' })
    expect(res.statusCode).toBe(201)
    const { asset, job } = res.json()
    expect(res.headers.location).toBe(`/media/jobs/${job.id}`)
    expect(asset).toMatchObject({
      originalFilename: 'tone.mp3',
      contentType: 'audio/mpeg',
      size: tone.length,
    })
    expect(asset).not.toHaveProperty('storageKey')
    expect(job.assetId).toBe(asset.id)
    expect(job.outputs.map((o: { presetId: string }) => o.presetId)).toEqual(['wav', 'flac'])

    const done = await waitFor(
      async () => {
        const current = (await t.app.inject({ url: `/media/jobs/${job.id}` })).json()
        return current.state === 'complete' ? current : null
      },
      30_000,
      'the job to complete',
    )
    expect(done.progress).toBe(100)
    for (const output of done.outputs) {
      expect(output.state).toBe('complete')
      expect(output.size).toBeGreaterThan(1000)
      expect(output.durationSec).toBeCloseTo(2, 0)
      expect(output.url).toMatch(
        new RegExp(`^/media/files/.+\\.${output.presetId === 'wav' ? 'wav' : 'flac'}\\?expires=`),
      )
      const file = await t.app.inject({ url: output.url })
      expect(file.statusCode).toBe(200)
      expect(file.rawPayload.length).toBe(output.size)
      expect(file.headers['x-content-type-options']).toBe('nosniff')
      expect(file.headers['content-type']).toBe(output.contentType)
      expect(file.headers['content-disposition']).toMatch(/^inline; filename="/)
    }
  })

  it('fields may also come as one comma-separated value or in the query', async () => {
    t = await makeApp({ worker: false })
    const a = await upload(t.app, ['wav, 1351620000001-300110'])
    expect(a.statusCode).toBe(201)
    expect(a.json().job.outputs.map((o: { presetId: string }) => o.presetId)).toEqual([
      'wav',
      'flac',
    ])
    const body = multipart([{ name: 'file', filename: 'x.mp3', data: tone }])
    const b = await t.app.inject({
      method: 'POST',
      url: '/uploads?presets=m4a',
      headers: body.headers,
      payload: body.payload,
    })
    expect(b.statusCode).toBe(201)
    expect(b.json().job.outputs.map((o: { presetId: string }) => o.presetId)).toEqual(['aac-256k'])
  })

  it('answers a retried request with the same Idempotency-Key with the same asset and job', async () => {
    t = await makeApp({ worker: false })
    const first = await upload(t.app, ['wav'], { key: 'upload-1' })
    const second = await upload(t.app, ['wav'], { key: 'upload-1' })
    expect(first.statusCode).toBe(201)
    expect(second.statusCode).toBe(201)
    expect(second.json().job.id).toBe(first.json().job.id)
    expect(second.json().asset.id).toBe(first.json().asset.id)
    expect(second.headers.location).toBe(first.headers.location)
    const state = await t.snapshot()
    expect(state.assets).toEqual([first.json().asset.id])
    expect(state.jobs).toEqual([first.json().job.id])
    expect(state.tmp).toEqual([])
  })

  it('answers 422 when the same key comes with other bytes, leaving nothing new', async () => {
    t = await makeApp({ worker: false })
    expect((await upload(t.app, ['wav'], { key: 'k' })).statusCode).toBe(201)
    const before = await t.snapshot()
    const other = Buffer.concat([tone, Buffer.alloc(10)])
    const res = await upload(t.app, ['wav'], { key: 'k', data: other })
    expect(res.statusCode).toBe(422)
    expect(res.json()).toMatchObject({
      statusCode: 422,
      code: 'TRANSCODEKIT_IDEMPOTENCY_CONFLICT',
      error: 'Unprocessable Entity',
    })
    expect(await t.snapshot()).toEqual(before)
  })
})

describe('a video upload', () => {
  it('makes an MP4 and a thumbnail, served inline with their types', async () => {
    t = await makeApp()
    const video = await readFile(
      await makeVideo(join(fixtures, 'clip.mp4'), { seconds: 1, width: 320, height: 240 }),
    )
    const res = await upload(t.app, ['mp4-480p', 'thumbnail'], {
      filename: 'clip.mp4',
      data: video,
    })
    expect(res.statusCode).toBe(201)
    expect(res.json().asset).toMatchObject({ contentType: 'video/mp4' })
    const { job } = res.json()
    const done = await waitFor(async () => {
      const current = (await t.app.inject({ url: `/jobs/${job.id}` })).json()
      return current.state === 'complete' || current.state === 'error' ? current : null
    })
    expect(done.state, done.errorMessage).toBe('complete')
    for (const [presetId, type] of [
      ['mp4-480p', 'video/mp4'],
      ['thumbnail', 'image/jpeg'],
    ]) {
      const output = done.outputs.find((o: { presetId: string }) => o.presetId === presetId)
      const file = await t.app.inject({ url: output.url })
      expect(file.statusCode).toBe(200)
      expect(file.headers['content-type']).toBe(type)
      expect(file.headers['content-disposition']).toMatch(/^inline;/)
    }
  })
})

describe('GET /jobs/:id/events', () => {
  it('streams the job as server-sent events until it ends', async () => {
    t = await makeApp()
    const { job } = (await upload(t.app, ['wav', 'm4a'])).json()
    const res = await t.app.inject({ url: `/jobs/${job.id}/events` })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8')
    const events = parseEvents(res.body)
    expect(events.length).toBeGreaterThanOrEqual(2)
    expect(events.every((e) => e.event === 'job')).toBe(true)
    const jobs = events.map((e) => JSON.parse(e.data))
    const progress = jobs.map((j) => j.progress)
    expect(progress).toEqual([...progress].sort((a, b) => a - b))
    const last = jobs.at(-1)
    expect(last).toMatchObject({ id: job.id, state: 'complete', progress: 100 })
    expect(last.outputs.every((o: { url: string | null }) => o.url?.startsWith('/files/'))).toBe(
      true,
    )
  })

  it('ends at once for a job that has already ended', async () => {
    t = await makeApp({ worker: false })
    const { job } = (await upload(t.app, ['wav'])).json()
    await t.app.inject({ method: 'POST', url: `/jobs/${job.id}/cancel` })
    const res = await t.app.inject({ url: `/jobs/${job.id}/events` })
    const events = parseEvents(res.body)
    expect(events).toHaveLength(1)
    expect(JSON.parse(events[0]!.data).state).toBe('canceled')
  })
})

describe('closing the app', () => {
  it('ends open event streams, so closing does not wait for jobs that never end', async () => {
    t = await makeApp({ worker: false })
    const { job } = (await upload(t.app, ['wav'])).json()
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const port = (t.app.server.address() as { port: number }).port
    const response = await fetch(`http://127.0.0.1:${port}/jobs/${job.id}/events`)
    const reader = response.body!.getReader()
    const first = new TextDecoder().decode((await reader.read()).value)
    expect(first).toContain('retry: 2000')
    // The job waits forever (no worker); close must still finish, and the stream end.
    await t.app.close()
    let rest = ''
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      rest += new TextDecoder().decode(value)
    }
    const events = parseEvents(first + rest)
    expect(events.map((e) => JSON.parse(e.data).state)).toEqual(['submitted'])
  })
})

describe('assets', () => {
  it('lists assets newest first with a cursor, reads and deletes them', async () => {
    t = await makeApp({ worker: false })
    const ids: string[] = []
    for (let i = 0; i < 3; i++)
      ids.push((await upload(t.app, ['wav'], { filename: `t${i}.mp3` })).json().asset.id)
    const page1 = (await t.app.inject({ url: '/assets?limit=2' })).json()
    expect(page1.items.map((a: { id: string }) => a.id)).toEqual([ids[2], ids[1]])
    expect(page1.nextCursor).toEqual(expect.any(String))
    const page2 = (
      await t.app.inject({ url: `/assets?limit=2&cursor=${encodeURIComponent(page1.nextCursor)}` })
    ).json()
    expect(page2.items.map((a: { id: string }) => a.id)).toEqual([ids[0]])
    expect(page2.nextCursor).toBeNull()

    const one = await t.app.inject({ url: `/assets/${ids[1]}` })
    expect(one.statusCode).toBe(200)
    expect(one.json()).toMatchObject({
      id: ids[1],
      originalFilename: 't1.mp3',
      media: { formatName: 'mp3' },
    })

    const before = await t.snapshot()
    expect(before.files.some((f) => f.startsWith(`${ids[1]}/`))).toBe(true)
    const del = await t.app.inject({ method: 'DELETE', url: `/assets/${ids[1]}` })
    expect(del.statusCode).toBe(204)
    expect(del.body).toBe('')
    const after = await t.snapshot()
    expect(after.files.some((f) => f.includes(ids[1]!))).toBe(false)
    expect(after.assets).toEqual([ids[0], ids[2]].sort())
    expect(after.jobs).toHaveLength(2)
    expect((await t.app.inject({ url: `/assets/${ids[1]}` })).statusCode).toBe(404)
  })

  it('deleting an asset removes its outputs too', async () => {
    t = await makeApp()
    const { asset, job } = (await upload(t.app, ['flac'])).json()
    await waitFor(
      async () => (await t.app.inject({ url: `/jobs/${job.id}` })).json().state === 'complete',
    )
    expect(
      (await t.snapshot()).files.filter((f) => f.startsWith(`${asset.id}/${job.id}/`)),
    ).toHaveLength(1)
    expect((await t.app.inject({ method: 'DELETE', url: `/assets/${asset.id}` })).statusCode).toBe(
      204,
    )
    const after = await t.snapshot()
    expect(after).toMatchObject({ assets: [], jobs: [], tmp: [] })
    expect(after.files.filter((f) => !f.startsWith('.'))).toEqual([])
  })
})

describe('cancel and retry', () => {
  it('cancels a waiting job, retries it as one new job, refuses to cancel or retry in the wrong state', async () => {
    t = await makeApp({ worker: false })
    const { job } = (await upload(t.app, ['wav'])).json()
    const retryEarly = await t.app.inject({ method: 'POST', url: `/jobs/${job.id}/retry` })
    expect(retryEarly.statusCode).toBe(409)
    expect(retryEarly.json().code).toBe('TRANSCODEKIT_INVALID_STATE')

    const canceled = await t.app.inject({ method: 'POST', url: `/jobs/${job.id}/cancel` })
    expect(canceled.statusCode).toBe(200)
    expect(canceled.json()).toMatchObject({ id: job.id, state: 'canceled' })
    expect(canceled.json().outputs[0].state).toBe('canceled')
    // Canceling again answers the job as it is.
    expect(
      (await t.app.inject({ method: 'POST', url: `/jobs/${job.id}/cancel` })).json().state,
    ).toBe('canceled')

    const retried = await t.app.inject({ method: 'POST', url: `/jobs/${job.id}/retry` })
    expect(retried.statusCode).toBe(201)
    const newJob = retried.json()
    expect(newJob.id).not.toBe(job.id)
    expect(newJob).toMatchObject({ assetId: job.assetId, state: 'submitted' })
    expect(retried.headers.location).toBe(`/jobs/${newJob.id}`)
    const again = await t.app.inject({ method: 'POST', url: `/jobs/${job.id}/retry` })
    expect(again.json().id).toBe(newJob.id)

    const list = (await t.app.inject({ url: `/jobs?assetId=${job.assetId}` })).json()
    expect(list.items.map((j: { id: string }) => j.id).sort()).toEqual([job.id, newJob.id].sort())
    const waiting = (await t.app.inject({ url: '/jobs?state=submitted' })).json()
    expect(waiting.items.map((j: { id: string }) => j.id)).toEqual([newJob.id])
  })

  it('refuses to cancel a completed job with 409', async () => {
    t = await makeApp()
    const { job } = (await upload(t.app, ['wav'])).json()
    await waitFor(
      async () => (await t.app.inject({ url: `/jobs/${job.id}` })).json().state === 'complete',
    )
    const res = await t.app.inject({ method: 'POST', url: `/jobs/${job.id}/cancel` })
    expect(res.statusCode).toBe(409)
    expect(res.json()).toMatchObject({
      statusCode: 409,
      code: 'TRANSCODEKIT_INVALID_STATE',
      error: 'Conflict',
    })
  })
})

describe('GET /files/*', () => {
  it('serves byte ranges, 416 past the end, and no name the link picks', async () => {
    t = await makeApp()
    const { job } = (await upload(t.app, ['wav'])).json()
    const done = await waitFor(async () => {
      const current = (await t.app.inject({ url: `/jobs/${job.id}` })).json()
      return current.state === 'complete' ? current : null
    })
    const { url, size } = done.outputs[0]
    const whole = await t.app.inject({ url })
    expect(whole.headers['accept-ranges']).toBe('bytes')
    expect(whole.headers['content-length']).toBe(String(size))

    const part = await t.app.inject({ url, headers: { range: 'bytes=10-19' } })
    expect(part.statusCode).toBe(206)
    expect(part.headers['content-range']).toBe(`bytes 10-19/${size}`)
    expect(part.rawPayload).toEqual(whole.rawPayload.subarray(10, 20))

    const tail = await t.app.inject({ url, headers: { range: 'bytes=-4' } })
    expect(tail.statusCode).toBe(206)
    expect(tail.rawPayload).toEqual(whole.rawPayload.subarray(size - 4))

    const open = await t.app.inject({ url, headers: { range: `bytes=${size - 2}-` } })
    expect(open.statusCode).toBe(206)
    expect(open.rawPayload.length).toBe(2)

    const past = await t.app.inject({ url, headers: { range: `bytes=${size}-` } })
    expect(past.statusCode).toBe(416)
    expect(past.headers['content-range']).toBe(`bytes */${size}`)
    expect(past.json().code).toBe('TRANSCODEKIT_RANGE_NOT_SATISFIABLE')

    const head = await t.app.inject({ method: 'HEAD', url })
    expect(head.statusCode).toBe(200)
    expect(head.headers['content-length']).toBe(String(size))
    expect(head.rawPayload.length).toBe(0)
    const etag = whole.headers.etag as string
    expect(etag).toMatch(/^".+"$/)
    const cached = await t.app.inject({ url, headers: { 'if-none-match': etag } })
    expect(cached.statusCode).toBe(304)
    expect(cached.rawPayload.length).toBe(0)

    // The link cannot choose the saved name: the name is part of the signature.
    const named = await t.app.inject({ url: `${url}&download=evil.html` })
    expect(named.statusCode).toBe(403)
    expect(named.json().code).toBe('TRANSCODEKIT_FILE_URL_INVALID')
  })

  it('answers 404 for absent files and for keys that try to leave the storage root', async () => {
    const secret = 'a test secret of at least thirty-two bytes'
    const signer = new FileUrlSigner(secret)
    t = await makeApp({ worker: false, fileUrlSecret: secret })
    // A literal `/a/../../` is folded by the URL parser before routing: never reaches the route.
    expect((await t.app.inject({ url: '/files/a/../../etc/passwd' })).statusCode).toBe(404)
    for (const url of [
      '/files/nope/nothing.wav',
      '/files/..%2f..%2fetc%2fpasswd',
      '/files/a/..%2F..%2Fx',
      '/files/%00',
      '/files/.meta/x',
    ]) {
      // Even with a genuine signature for the key the route sees.
      const key = decodeURIComponent(url.slice('/files/'.length))
      const res = await t.app.inject({ url: `${url}?${signer.sign(key, { expiresInSec: 60 })}` })
      expect(res.statusCode, url).toBe(404)
      expect(res.json().code, url).toBe('TRANSCODEKIT_NOT_FOUND')
    }
  })
})

describe('GET /presets', () => {
  it('lists the catalog with aliases and what each needs', async () => {
    t = await makeApp({ worker: false })
    const res = await t.app.inject({ url: '/presets' })
    expect(res.statusCode).toBe(200)
    const items = res.json().items as Array<{ id: string; aliases: string[]; needs: string }>
    expect(items.find((p) => p.id === 'wav')).toMatchObject({
      aliases: expect.arrayContaining(['1351620000001-300300']),
      needs: 'audio',
      contentType: 'audio/wav',
    })
    expect(items.find((p) => p.id === 'mp4-720p')?.needs).toBe('video')
  })
})

describe('OpenAPI', () => {
  it('documents every route with an operationId in a document that validates', async () => {
    t = await makeApp({
      prefix: '/media',
      worker: false,
      notifications: {
        verify: async () => {
          throw new Error('unused')
        },
        confirmSubscription: async () => {},
      },
    })
    const document = t.app.swagger() as {
      paths: Record<string, Record<string, { operationId?: string; tags?: string[] }>>
    }
    await SwaggerParser.validate(structuredClone(document) as never)
    const operations = Object.values(document.paths).flatMap((methods) => Object.values(methods))
    const ids = operations.map((op) => op.operationId).sort()
    expect(ids).toEqual([
      'cancelJob',
      'createUpload',
      'deleteAsset',
      'getAsset',
      'getFile',
      'getJob',
      'listAssets',
      'listJobs',
      'listPresets',
      'receiveSnsNotification',
      'retryJob',
      'streamJobEvents',
    ])
    expect(operations.every((op) => op.tags?.includes('transcodekit'))).toBe(true)
    expect(Object.keys(document.paths)).toContain('/media/jobs/{id}/events')
  })
})
