import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeTone } from '@transcodekit/core/testing'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { makeApp, multipart, type Part, type Snapshot, type TestApp, waitFor } from './helpers.ts'

let fixtures: string
let tone: Buffer

beforeAll(async () => {
  fixtures = await mkdtemp(join(tmpdir(), 'transcodekit-fastify-bad-'))
  tone = await readFile(await makeTone(join(fixtures, 'tone.mp3'), { seconds: 2, format: 'mp3' }))
})
afterAll(async () => {
  await rm(fixtures, { recursive: true, force: true })
})

let t: TestApp
afterEach(async () => {
  await t?.close()
})

function emptyState(state: Snapshot) {
  expect(state.files).toEqual([])
  expect(state.tmp).toEqual([])
  expect(state.assets).toEqual([])
  expect(state.jobs).toEqual([])
}

async function post(parts: Part[], headers: Record<string, string> = {}) {
  const body = multipart(parts)
  return t.app.inject({
    method: 'POST',
    url: '/uploads',
    headers: { ...body.headers, ...headers },
    payload: body.payload,
  })
}

function expectError(
  res: { statusCode: number; json(): unknown },
  statusCode: number,
  code: string,
) {
  expect(res.statusCode).toBe(statusCode)
  expect(res.json()).toMatchObject({
    statusCode,
    code,
    error: expect.any(String),
    message: expect.any(String),
  })
}

/**
 * Sends raw bytes over a real socket and reads the answer; `end: false` leaves the request
 * body unfinished and closes the socket, as a client that goes away mid-upload.
 */
async function rawRequest(
  port: number,
  head: string,
  chunks: Buffer[],
  options: { abort?: boolean } = {},
): Promise<{ status: number | null; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
    socket.setEncoding('latin1')
    socket.on('data', (data) => {
      text += data
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE')
        resolve({ status: parseStatus(text), text })
      else reject(error)
    })
    socket.on('close', () => resolve({ status: parseStatus(text), text }))
    socket.on('connect', async () => {
      socket.write(head)
      for (const chunk of chunks) {
        if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r))
      }
      if (options.abort) socket.destroy()
      else socket.end()
    })
  })
}

function parseStatus(text: string): number | null {
  const match = /^HTTP\/1\.1 (\d{3})/.exec(text)
  return match ? Number(match[1]) : null
}

describe('bad uploads leave nothing behind', () => {
  it('413 for a file over the size limit (inject)', async () => {
    t = await makeApp({ limits: { fileSize: 16 * 1024 } })
    const res = await post([
      { name: 'presets', value: 'wav' },
      { name: 'file', filename: 'big.mp3', contentType: 'audio/mpeg', data: tone },
    ])
    expectError(res, 413, 'TRANSCODEKIT_TOO_LARGE')
    emptyState(await t.snapshot())
  })

  it('413 for a file over the size limit streamed over a socket, and the server stays up', async () => {
    t = await makeApp({ limits: { fileSize: 64 * 1024 } })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const port = (t.app.server.address() as { port: number }).port
    const big = Buffer.concat(Array.from({ length: 40 }, () => tone)) // ≈ 2 MB
    const body = multipart([
      { name: 'presets', value: 'wav' },
      { name: 'file', filename: 'big.mp3', contentType: 'audio/mpeg', data: big },
    ])
    const res = await fetch(`http://127.0.0.1:${port}/uploads`, {
      method: 'POST',
      headers: body.headers,
      body: body.payload,
    })
    expect(res.status).toBe(413)
    expect((await res.json()).code).toBe('TRANSCODEKIT_TOO_LARGE')
    await waitFor(
      async () => (await t.snapshot()).tmp.length === 0,
      5000,
      'the spool to be removed',
    )
    emptyState(await t.snapshot())
    expect((await fetch(`http://127.0.0.1:${port}/assets`)).status).toBe(200)
  })

  it('413 for a second file, too many fields, too many parts; 413 for a field too large', async () => {
    t = await makeApp({ limits: { fields: 2, parts: 4, fieldSize: 64 } })
    const file = { name: 'file', filename: 'a.mp3', contentType: 'audio/mpeg', data: tone }
    expectError(
      await post([{ name: 'presets', value: 'wav' }, file, { ...file, filename: 'b.mp3' }]),
      413,
      'TRANSCODEKIT_TOO_MANY_PARTS',
    )
    emptyState(await t.snapshot())
    const fields = [1, 2, 3].map((i) => ({ name: `f${i}`, value: 'x' }))
    expectError(await post([...fields, file]), 413, 'TRANSCODEKIT_TOO_MANY_PARTS')
    emptyState(await t.snapshot())
    const parts = [1, 2].map((i) => ({ name: `f${i}`, value: 'x' }))
    expectError(
      await post([...parts, file, { ...file, filename: 'b.mp3' }, { ...file, filename: 'c.mp3' }]),
      413,
      'TRANSCODEKIT_TOO_MANY_PARTS',
    )
    emptyState(await t.snapshot())
    expectError(
      await post([{ name: 'presets', value: 'w'.repeat(100) }, file]),
      413,
      'TRANSCODEKIT_FIELD_TOO_LARGE',
    )
    emptyState(await t.snapshot())
  })

  it('400 for malformed multipart: a boundary that is not the declared one, no final boundary', async () => {
    t = await makeApp()
    const body = multipart([{ name: 'file', filename: 'a.mp3', data: tone }], 'real-boundary')
    const wrong = await t.app.inject({
      method: 'POST',
      url: '/uploads',
      headers: { 'content-type': 'multipart/form-data; boundary=other-boundary' },
      payload: body.payload,
    })
    expect(wrong.statusCode).toBeGreaterThanOrEqual(400)
    expect(wrong.statusCode).toBeLessThan(500)
    expect(wrong.json().code).toMatch(/^TRANSCODEKIT_(MALFORMED_MULTIPART|MISSING_FILE)$/)
    emptyState(await t.snapshot())

    const unfinished = body.payload.subarray(
      0,
      body.payload.length - '--real-boundary--\r\n'.length - 1000,
    )
    const cut = await t.app.inject({
      method: 'POST',
      url: '/uploads',
      headers: body.headers,
      payload: unfinished,
    })
    expectError(cut, 400, 'TRANSCODEKIT_MALFORMED_MULTIPART')
    emptyState(await t.snapshot())

    const noBoundary = await t.app.inject({
      method: 'POST',
      url: '/uploads',
      headers: { 'content-type': 'multipart/form-data' },
      payload: body.payload,
    })
    expect(noBoundary.statusCode).toBeGreaterThanOrEqual(400)
    expect(noBoundary.statusCode).toBeLessThan(500)
    emptyState(await t.snapshot())
  })

  it('a truncated body and a client that goes away mid-upload leave nothing, and the server stays up', async () => {
    t = await makeApp()
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const port = (t.app.server.address() as { port: number }).port
    const big = Buffer.concat(Array.from({ length: 20 }, () => tone))
    const body = multipart([
      { name: 'presets', value: 'wav' },
      { name: 'file', filename: 'a.mp3', contentType: 'audio/mpeg', data: big },
    ])
    const head =
      `POST /uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${body.headers['content-type']}\r\n` +
      `Content-Length: ${body.payload.length}\r\n\r\n`

    // Half the body, then the socket goes away.
    const aborted = await rawRequest(
      port,
      head,
      [body.payload.subarray(0, body.payload.length / 2)],
      { abort: true },
    )
    expect(aborted.status === null || (aborted.status >= 400 && aborted.status < 500)).toBe(true)
    await waitFor(
      async () => {
        const state = await t.snapshot()
        return state.tmp.length === 0 && state.files.length === 0 && state.assets.length === 0
      },
      10_000,
      'the aborted upload to be cleaned up',
    )

    // Half the body, then the client half-closes: the declared length never arrives.
    const truncated = await rawRequest(port, head, [
      body.payload.subarray(0, body.payload.length / 2),
    ])
    expect(truncated.status === null || (truncated.status >= 400 && truncated.status < 500)).toBe(
      true,
    )
    await waitFor(
      async () => {
        const state = await t.snapshot()
        return state.tmp.length === 0 && state.files.length === 0 && state.assets.length === 0
      },
      10_000,
      'the truncated upload to be cleaned up',
    )
    emptyState(await t.snapshot())

    // The process still serves, and a good upload still works on a new connection.
    const ok = await fetch(`http://127.0.0.1:${port}/uploads`, {
      method: 'POST',
      headers: body.headers,
      body: body.payload,
    })
    expect(ok.status).toBe(201)
  })

  it('415 for HTML and SVG named .mp3 and sent as audio/mpeg', async () => {
    t = await makeApp()
    const html = Buffer.from('<!doctype html><html><body><script>alert(1)</script></body></html>')
    const svg = Buffer.from(
      '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    )
    for (const data of [html, svg, Buffer.from('   \n<svg onload="alert(1)"/>')]) {
      const res = await post([
        { name: 'presets', value: 'wav' },
        { name: 'file', filename: 'song.mp3', contentType: 'audio/mpeg', data },
      ])
      expectError(res, 415, 'TRANSCODEKIT_UNSUPPORTED_MEDIA')
      emptyState(await t.snapshot())
    }
    // Bytes no demuxer takes, past the sniffer: ffprobe refuses them.
    const noise = Buffer.alloc(50_000, 7)
    expectError(
      await post([{ name: 'file', filename: 'noise.mp3', contentType: 'audio/mpeg', data: noise }]),
      415,
      'TRANSCODEKIT_UNSUPPORTED_MEDIA',
    )
    emptyState(await t.snapshot())
  })

  it('400 for an unknown preset, a preset after the file, a missing file, a bad cursor; 415 for a body that is not multipart', async () => {
    t = await makeApp()
    const file = { name: 'file', filename: 'a.mp3', contentType: 'audio/mpeg', data: tone }
    expectError(
      await post([{ name: 'presets', value: 'wav,no-such-preset' }, file]),
      400,
      'TRANSCODEKIT_UNKNOWN_PRESET',
    )
    emptyState(await t.snapshot())
    expectError(
      await post([{ name: 'presets', value: 'mp4-720p' }, file]),
      400,
      'TRANSCODEKIT_INCOMPATIBLE_PRESET',
    )
    emptyState(await t.snapshot())
    expectError(
      await post([file, { name: 'presets', value: 'wav' }]),
      400,
      'TRANSCODEKIT_INVALID_REQUEST',
    )
    await waitFor(
      async () => (await t.snapshot()).files.filter((f) => !f.startsWith('.')).length === 0,
      5000,
    )
    emptyState(await t.snapshot())
    expectError(await post([{ name: 'presets', value: 'wav' }]), 400, 'TRANSCODEKIT_MISSING_FILE')
    expectError(
      await t.app.inject({ url: '/assets?cursor=garbage' }),
      400,
      'TRANSCODEKIT_INVALID_CURSOR',
    )
    expectError(
      await t.app.inject({ url: '/assets?limit=1000' }),
      400,
      'TRANSCODEKIT_INVALID_REQUEST',
    )
    const json = await t.app.inject({ method: 'POST', url: '/uploads', payload: { file: 'x' } })
    expectError(json, 415, 'TRANSCODEKIT_NOT_MULTIPART')
    expectError(
      await post([file], { 'idempotency-key': 'k'.repeat(300) }),
      400,
      'TRANSCODEKIT_INVALID_REQUEST',
    )
    emptyState(await t.snapshot())
  })

  it('404 for unknown ids on every route, 400 for ids that are not uuids', async () => {
    t = await makeApp({ worker: false })
    const id = '00000000-0000-4000-8000-000000000000'
    const routes: Array<[string, string]> = [
      ['GET', `/assets/${id}`],
      ['DELETE', `/assets/${id}`],
      ['GET', `/jobs/${id}`],
      ['GET', `/jobs/${id}/events`],
      ['POST', `/jobs/${id}/cancel`],
      ['POST', `/jobs/${id}/retry`],
    ]
    for (const [method, url] of routes) {
      const res = await t.app.inject({ method: method as 'GET', url })
      expect(res.statusCode, `${method} ${url}`).toBe(404)
      expect(res.json().code, `${method} ${url}`).toBe('TRANSCODEKIT_NOT_FOUND')
    }
    expectError(
      await t.app.inject({ url: '/jobs/not-a-uuid' }),
      400,
      'TRANSCODEKIT_INVALID_REQUEST',
    )
  })
})

describe('hostile file names', () => {
  it('keeps the name as metadata only: intact in JSON, never in a storage key', async () => {
    t = await makeApp({ worker: false })
    const names = [
      '../../../etc/passwd.mp3',
      `${'long'.repeat(62)}.mp3`,
      '\u05e9\u05dc\u05d5\u05dd \u{1F3B5}.mp3',
      '<img src=x onerror=alert(1)>.mp3',
    ]
    for (const filename of names) {
      const res = await post([
        { name: 'presets', value: 'wav' },
        { name: 'file', filename, contentType: 'audio/mpeg', data: tone },
      ])
      expect(res.statusCode, JSON.stringify(filename)).toBe(201)
      const { asset } = res.json()
      // The parser keeps the last path segment only; the rest is kept exactly.
      const expected = filename.slice(filename.lastIndexOf('/') + 1)
      expect(asset.originalFilename).toBe(expected)
      // The JSON text escapes what must be escaped: it parses back to the same string.
      expect(res.body).not.toContain('\u0000')
      const read = await t.app.inject({ url: `/assets/${asset.id}` })
      expect(read.json().originalFilename).toBe(expected)
    }
    const { files } = await t.snapshot()
    for (const file of files) {
      expect(file).toMatch(/^[A-Za-z0-9._/-]+$/)
      expect(file).not.toMatch(/passwd|long|img|\.\.\//)
    }
  })

  it('400 for a name over 255 characters or holding control characters, and nothing kept', async () => {
    t = await makeApp({ worker: false })
    for (const filename of [
      `${'x'.repeat(252)}.mp3`,
      `${'long'.repeat(20_000)}.mp3`,
      'a\u0000b.mp3',
      'a\tb.mp3',
      'x\u0085.mp3',
      '\u202Egnp.mp3',
    ]) {
      const res = await post([
        { name: 'presets', value: 'wav' },
        { name: 'file', filename, contentType: 'audio/mpeg', data: tone },
      ])
      expectError(res, 400, 'TRANSCODEKIT_INVALID_REQUEST')
      expect(res.json().message).toMatch(/^the file name /)
      emptyState(await t.snapshot())
    }
  })
})
