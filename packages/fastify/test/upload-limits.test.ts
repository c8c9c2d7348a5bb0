import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeTone } from '@transcodekit/core/testing'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { maxUploadBodyBytes, resolveOptions } from '../src/plugin-options.ts'
import { makeApp, multipart, type TestApp, waitFor } from './helpers.ts'

let fixtures: string
let tone: Buffer

beforeAll(async () => {
  fixtures = await mkdtemp(join(tmpdir(), 'transcodekit-upload-limits-'))
  tone = await readFile(await makeTone(join(fixtures, 'tone.mp3'), { seconds: 4, format: 'mp3' }))
})
afterAll(async () => {
  await rm(fixtures, { recursive: true, force: true })
})

let t: TestApp
afterEach(async () => {
  await t?.close()
})

async function listen(app: TestApp): Promise<number> {
  await app.app.listen({ port: 0, host: '127.0.0.1' })
  return (app.app.server.address() as { port: number }).port
}

interface Answer {
  status: number | null
  text: string
  /** When the server closed the connection, in ms from the connection. */
  closedAfterMs: number
}

/**
 * A client that sends the request head and `body`, then nothing, and keeps the socket open
 * until the server closes it. Resolves with what the server answered.
 */
function stalledRequest(
  port: number,
  head: string,
  body: Buffer,
  onSent?: (socket: Socket) => void,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const socket = connect(port, '127.0.0.1')
    let text = ''
    socket.setEncoding('latin1')
    socket.on('data', (data) => {
      text += data
    })
    const done = () =>
      resolve({ status: parseStatus(text), text, closedAfterMs: Date.now() - started })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') done()
      else reject(error)
    })
    socket.on('close', done)
    socket.on('connect', () => {
      socket.write(head)
      if (body.length > 0) socket.write(body)
      onSent?.(socket)
    })
  })
}

function parseStatus(text: string): number | null {
  const match = /^HTTP\/1\.1 (\d{3})/.exec(text)
  return match ? Number(match[1]) : null
}

function jsonOf(text: string): unknown {
  return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))
}

function uploadHead(body: { headers: Record<string, string>; payload: Buffer }, length?: number) {
  return (
    `POST /uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${body.headers['content-type']}\r\n` +
    `Content-Length: ${length ?? body.payload.length}\r\n\r\n`
  )
}

describe('stalled upload bodies', () => {
  it('cuts 40 concurrent stalled uploads at the idle timeout, leaves nothing, and keeps serving', async () => {
    const idleMs = 1000
    t = await makeApp({ uploadIdleTimeoutMs: idleMs, worker: false })
    const port = await listen(t)
    const body = multipart([
      { name: 'presets', value: 'wav' },
      { name: 'file', filename: 'a.mp3', contentType: 'audio/mpeg', data: tone },
    ])
    const head = uploadHead(body)
    // The presets field and half the file: the spool exists when the body stalls.
    const part = body.payload.subarray(0, Math.floor(body.payload.length / 2))
    const answers = await Promise.all(
      Array.from({ length: 40 }, () => stalledRequest(port, head, part)),
    )
    const times = answers.map((answer) => answer.closedAfterMs)
    console.info(`40 stalled uploads cut after ${Math.min(...times)}–${Math.max(...times)} ms`)
    for (const answer of answers) {
      // Cut at about the idle timeout: not before, and not long after.
      expect(answer.closedAfterMs).toBeGreaterThanOrEqual(idleMs - 50)
      expect(answer.closedAfterMs).toBeLessThan(idleMs + 5000)
      expect(answer.status).toBe(408)
      expect(jsonOf(answer.text)).toMatchObject({
        statusCode: 408,
        code: 'TRANSCODEKIT_UPLOAD_TIMEOUT',
        message: expect.stringContaining('1000 ms'),
      })
    }
    await waitFor(
      async () => {
        const state = await t.snapshot()
        return state.tmp.length === 0 && state.files.length === 0
      },
      10_000,
      'the spools to be removed',
    )
    expect(await t.snapshot()).toEqual({ files: [], tmp: [], assets: [], jobs: [] })

    const ok = await fetch(`http://127.0.0.1:${port}/uploads`, {
      method: 'POST',
      headers: body.headers,
      body: body.payload,
    })
    expect(ok.status).toBe(201)
  })

  it('had spooled the stalled bodies before cutting them (what the cut removes)', async () => {
    t = await makeApp({ uploadIdleTimeoutMs: 3000, worker: false })
    const port = await listen(t)
    const body = multipart([
      { name: 'file', filename: 'a.mp3', contentType: 'audio/mpeg', data: tone },
    ])
    const part = body.payload.subarray(0, Math.floor(body.payload.length / 2))
    const pending = Promise.all(
      Array.from({ length: 5 }, () => stalledRequest(port, uploadHead(body), part)),
    )
    await waitFor(
      async () => (await t.snapshot()).tmp.length === 5 || null,
      5000,
      'five spool files',
    )
    const answers = await pending
    expect(answers.map((answer) => answer.status)).toEqual([408, 408, 408, 408, 408])
    await waitFor(async () => (await t.snapshot()).tmp.length === 0, 5000, 'no spool file')
  })

  it('cuts a body stalled between parts (no file part yet)', async () => {
    t = await makeApp({ uploadIdleTimeoutMs: 500, worker: false })
    const port = await listen(t)
    const body = multipart([
      { name: 'presets', value: 'wav' },
      { name: 'file', filename: 'a.mp3', contentType: 'audio/mpeg', data: tone },
    ])
    const fieldOnly = body.payload.subarray(0, body.payload.indexOf('filename=') - 60)
    const answer = await stalledRequest(port, uploadHead(body), fieldOnly)
    expect(answer.closedAfterMs).toBeGreaterThanOrEqual(450)
    expect(answer.closedAfterMs).toBeLessThan(5500)
    expect(await t.snapshot()).toEqual({ files: [], tmp: [], assets: [], jobs: [] })
  })

  it('does not cut a slow upload that keeps sending, nor the work after its body', async () => {
    const idleMs = 1000
    t = await makeApp({ uploadIdleTimeoutMs: idleMs, worker: false })
    const port = await listen(t)
    const body = multipart([
      { name: 'file', filename: 'a.mp3', contentType: 'audio/mpeg', data: tone },
    ])
    // Ten slices, each sent well within the idle timeout, the whole upload well over it.
    const slices = 10
    const size = Math.ceil(body.payload.length / slices)
    const head = uploadHead(body).replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')
    const answer = await stalledRequest(port, head, Buffer.alloc(0), (socket) => {
      void (async () => {
        for (let i = 0; i < slices; i++) {
          await new Promise((resolve) => setTimeout(resolve, idleMs / 4))
          socket.write(body.payload.subarray(i * size, (i + 1) * size))
        }
      })()
    })
    expect(answer.closedAfterMs).toBeGreaterThan(idleMs * 2)
    expect(answer.status).toBe(201)
    expect((await t.snapshot()).assets).toHaveLength(1)
  })
})

describe('declared Content-Length over the limit', () => {
  it('answers 413 before the body is sent, and the connection closes', async () => {
    t = await makeApp({ limits: { fileSize: 64 * 1024 }, worker: false })
    const port = await listen(t)
    const body = multipart([
      { name: 'file', filename: 'a.mp3', contentType: 'audio/mpeg', data: tone },
    ])
    const max = maxUploadBodyBytes(
      resolveOptions({ service: t.service, limits: { fileSize: 64 * 1024 } }).limits,
    )
    // Headers only: the client waits for the answer before sending a byte of its body.
    const answer = await stalledRequest(port, uploadHead(body, max + 1), Buffer.alloc(0))
    expect(answer.status).toBe(413)
    expect(answer.text.toLowerCase()).toContain('connection: close')
    expect(jsonOf(answer.text)).toMatchObject({
      statusCode: 413,
      code: 'TRANSCODEKIT_TOO_LARGE',
      message: expect.stringContaining(String(max + 1)),
    })
    expect(await t.snapshot()).toEqual({ files: [], tmp: [], assets: [], jobs: [] })
  })

  it('lets a declared length within the file limit and the form around it through', async () => {
    t = await makeApp({ worker: false })
    const port = await listen(t)
    const body = multipart([
      { name: 'presets', value: 'wav' },
      { name: 'file', filename: 'a.mp3', contentType: 'audio/mpeg', data: tone },
    ])
    const ok = await fetch(`http://127.0.0.1:${port}/uploads`, {
      method: 'POST',
      headers: body.headers,
      body: body.payload,
    })
    expect(ok.status).toBe(201)
  })

  it('bounds the allowance for the form around the file', () => {
    const limits = resolveOptions({
      service: { storage: {} } as never,
      limits: { fileSize: 1000 },
    }).limits
    const max = maxUploadBodyBytes(limits)
    expect(max).toBeGreaterThan(1000)
    // 20 fields of 4 KiB and 25 parts' headers: under 200 KiB over the file limit.
    expect(max - 1000).toBeLessThan(200 * 1024)
  })
})
