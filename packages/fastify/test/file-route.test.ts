import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, utimes } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import type { Asset, Job, Output } from '@transcodekit/core'
import { makeTone } from '@transcodekit/core/testing'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { contentDisposition, FileUrlSigner } from '../src/index.ts'
import { downloadName } from '../src/job-view.ts'
import { makeApp, multipart, type TestApp, waitFor } from './helpers.ts'

const secret = randomBytes(32).toString('hex')
const signer = new FileUrlSigner(secret)
const body = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251))

let fixtures: string
let tone: Buffer
beforeAll(async () => {
  fixtures = await mkdtemp(join(tmpdir(), 'transcodekit-file-route-'))
  tone = await readFile(await makeTone(join(fixtures, 'tone.mp3'), { seconds: 1, format: 'mp3' }))
})
afterAll(async () => {
  await rm(fixtures, { recursive: true, force: true })
})

let t: TestApp
afterEach(async () => {
  await t?.close()
})

/** An app whose storage holds `a/b.bin` and `a/c.bin`, and the signed URL of `key`. */
async function withFiles() {
  t = await makeApp({ worker: false, fileUrlSecret: secret })
  for (const key of ['a/b.bin', 'a/c.bin']) {
    await t.service.storage.put(key, Readable.from([body]))
  }
}

function signed(key: string, options: { download?: string; now?: number } = {}) {
  return `/files/${key}?${signer.sign(key, { expiresInSec: 600, ...options })}`
}

function code(res: { json(): { code: string } }) {
  return res.json().code
}

describe('signed file URLs', () => {
  it('serves a signed URL and refuses a missing, altered, expired or foreign signature with 403', async () => {
    await withFiles()
    const good = await t.app.inject({ url: signed('a/b.bin') })
    expect(good.statusCode).toBe(200)
    expect(good.rawPayload).toEqual(body)

    const unsigned = await t.app.inject({ url: '/files/a/b.bin' })
    expect(unsigned.statusCode).toBe(403)
    expect(code(unsigned)).toBe('TRANSCODEKIT_FILE_URL_INVALID')
    // An absent file answers the same: an unsigned request learns nothing.
    const absent = await t.app.inject({ url: '/files/a/nothing.bin' })
    expect(absent.statusCode).toBe(403)
    expect(absent.body).toBe(unsigned.body.replace('a/b.bin', 'a/nothing.bin'))

    const url = new URL(signed('a/b.bin'), 'http://x')
    const sig = url.searchParams.get('signature')!
    const flipped = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1)
    const altered: Array<[string, Record<string, string>]> = [
      ['signature', { signature: flipped }],
      ['signature padded', { signature: `${sig}=` }],
      ['signature cut', { signature: sig.slice(0, -1) }],
      ['expires', { expires: String(Number(url.searchParams.get('expires')) + 60) }],
      ['download added', { download: 'evil.html' }],
    ]
    for (const [what, change] of altered) {
      const query = new URLSearchParams(url.searchParams)
      for (const [name, value] of Object.entries(change)) query.set(name, value)
      const res = await t.app.inject({ url: `/files/a/b.bin?${query}` })
      expect(res.statusCode, what).toBe(403)
      expect(code(res), what).toBe('TRANSCODEKIT_FILE_URL_INVALID')
    }
    const noExpiry = new URLSearchParams(url.searchParams)
    noExpiry.delete('expires')
    expect((await t.app.inject({ url: `/files/a/b.bin?${noExpiry}` })).statusCode).toBe(403)

    // Signed for one key, used for another.
    const other = await t.app.inject({ url: `/files/a/c.bin${url.search}` })
    expect(other.statusCode).toBe(403)
    expect(code(other)).toBe('TRANSCODEKIT_FILE_URL_INVALID')

    // Signed with another secret.
    const stranger = new FileUrlSigner(randomBytes(32))
    const foreign = `/files/a/b.bin?${stranger.sign('a/b.bin', { expiresInSec: 600 })}`
    expect((await t.app.inject({ url: foreign })).statusCode).toBe(403)

    // A genuine signature past its expiry.
    const expired = await t.app.inject({ url: signed('a/b.bin', { now: Date.now() - 7200_000 }) })
    expect(expired.statusCode).toBe(403)
    expect(code(expired)).toBe('TRANSCODEKIT_FILE_URL_EXPIRED')

    // A genuine signature for an absent file: 404 (the holder was given that key).
    const gone = await t.app.inject({ url: signed('a/nothing.bin') })
    expect(gone.statusCode).toBe(404)
    expect(code(gone)).toBe('TRANSCODEKIT_NOT_FOUND')
  })

  it('serves an attachment only under the name the signature covers', async () => {
    await withFiles()
    const res = await t.app.inject({ url: signed('a/b.bin', { download: 'Report é.bin' }) })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-disposition']).toBe(
      `attachment; filename="Report e.bin"; filename*=UTF-8''Report%20%C3%A9.bin`,
    )
    const url = new URL(signed('a/b.bin', { download: 'Report é.bin' }), 'http://x')
    url.searchParams.set('download', 'evil.html')
    const bent = await t.app.inject({ url: `${url.pathname}${url.search}` })
    expect(bent.statusCode).toBe(403)
  })

  it('the API hands out signed URLs, and a download named after the asset', async () => {
    t = await makeApp({ fileUrlSecret: secret })
    const form = multipart([
      { name: 'presets', value: 'wav' },
      { name: 'file', filename: 'My Song; é.mp3', contentType: 'audio/mpeg', data: tone },
    ])
    const created = await t.app.inject({
      method: 'POST',
      url: '/uploads',
      headers: form.headers,
      payload: form.payload,
    })
    expect(created.statusCode).toBe(201)
    const { job } = created.json()
    const done = await waitFor(async () => {
      const current = (await t.app.inject({ url: `/jobs/${job.id}` })).json()
      return current.state === 'complete' ? current : null
    })
    const [output] = done.outputs
    expect(output.url).toMatch(/^\/files\/.+\/wav\.wav\?expires=\d+&signature=[\w-]{43}$/)
    expect(output.downloadUrl).toMatch(/^\/files\/.+\/wav\.wav\?expires=\d+&download=.+&signature=/)

    const play = await t.app.inject({ url: output.url })
    expect(play.statusCode).toBe(200)
    expect(play.headers['content-disposition']).toBe(
      `inline; filename="wav.wav"; filename*=UTF-8''wav.wav`,
    )
    expect(play.headers['cache-control']).toMatch(/^private, max-age=\d+$/)

    const saved = await t.app.inject({ url: output.downloadUrl })
    expect(saved.statusCode).toBe(200)
    expect(saved.rawPayload).toEqual(play.rawPayload)
    // The original's base name with the output's extension (uploads refuse control and bidi
    // characters; the ASCII fallback name replaces the rest).
    expect(saved.headers['content-disposition']).toBe(
      `attachment; filename="My Song_ e.wav"; filename*=UTF-8''My%20Song%3B%20%C3%A9.wav`,
    )
    // The old way to pick a name no longer works.
    const picked = await t.app.inject({ url: `${output.url}&download=evil.html` })
    expect(picked.statusCode).toBe(403)
    expect(code(picked)).toBe('TRANSCODEKIT_FILE_URL_INVALID')
  })

  it('names downloads from the original, with the output name when extensions collide', () => {
    const asset = { id: 'a1', originalFilename: 'C:\\music\\Live.at.Home.flac' } as Asset
    const output = (name: string, extension: string) =>
      ({ name, storageKey: `a1/j1/${name}.${extension}` }) as Output
    const job = {
      outputs: [output('mp3-320', 'mp3'), output('mp3-128', 'mp3'), output('wav', 'wav')],
    } as Job
    expect(downloadName(asset, job, job.outputs[0]!)).toBe('Live.at.Home-mp3-320.mp3')
    expect(downloadName(asset, job, job.outputs[2]!)).toBe('Live.at.Home.wav')
    expect(downloadName(null, job, job.outputs[2]!)).toBe('wav.wav')
    const unnamed = { ...asset, originalFilename: null }
    expect(downloadName(unnamed, job, job.outputs[1]!)).toBe('mp3-128.mp3')
  })

  it('cleans a hostile asset name in Content-Disposition', () => {
    const disposition = contentDisposition(
      'attachment',
      '../a "b"\u202Eevil;\r\nX-Injected: 1 é.wav',
    )
    expect(disposition).not.toMatch(/[\r\n\u202E]/)
    expect(disposition).toContain(
      `filename*=UTF-8''${encodeURIComponent('.._a "b"evil;X-Injected: 1 é.wav').replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`,
    )
    expect(/filename="([^"]*)"/.exec(disposition)![1]).toBe('.._a _b_evil_X-Injected: 1 e.wav')
  })

  it('refuses a secret shorter than 32 bytes', () => {
    expect(() => new FileUrlSigner('short')).toThrow(/fileUrlSecret/)
  })
})

describe('ranges (RFC 9110 §14)', () => {
  it('answers 416 with the size for unsatisfiable ranges, huge ones included', async () => {
    await withFiles()
    const url = signed('a/b.bin')
    for (const range of [
      'bytes=99999999999999999999-',
      'bytes=99999999999999999999-99999999999999999999',
      'bytes=1000-',
      'bytes=5000-6000',
      'bytes=-0',
      'bytes=1000-, 2000-',
    ]) {
      const res = await t.app.inject({ url, headers: { range } })
      expect(res.statusCode, range).toBe(416)
      expect(res.headers['content-range'], range).toBe('bytes */1000')
      expect(code(res), range).toBe('TRANSCODEKIT_RANGE_NOT_SATISFIABLE')
    }
  })

  it('serves one range, merges overlapping ones, and ignores what it may ignore', async () => {
    await withFiles()
    const url = signed('a/b.bin')
    const cases: Array<[string, number, [number, number] | null]> = [
      ['bytes=10-19', 206, [10, 19]],
      ['bytes=990-99999999999999999999', 206, [990, 999]],
      ['bytes=-4', 206, [996, 999]],
      ['bytes=-5000', 206, [0, 999]],
      ['bytes=0-9, 5-19', 206, [0, 19]],
      ['bytes=0-9, 100-109', 200, null],
      ['bytes=abc', 200, null],
      ['bytes=19-10', 200, null],
      ['items=0-9', 200, null],
      ['bytes=1000-, 10-19', 206, [10, 19]],
    ]
    for (const [range, status, span] of cases) {
      const res = await t.app.inject({ url, headers: { range } })
      expect(res.statusCode, range).toBe(status)
      if (span) {
        expect(res.headers['content-range'], range).toBe(`bytes ${span[0]}-${span[1]}/1000`)
        expect(res.rawPayload, range).toEqual(body.subarray(span[0], span[1] + 1))
      } else {
        expect(res.rawPayload.length, range).toBe(1000)
      }
    }
    // HEAD has no range handling: the whole length, no body.
    const head = await t.app.inject({ method: 'HEAD', url, headers: { range: 'bytes=0-9' } })
    expect(head.statusCode).toBe(200)
    expect(head.headers['content-length']).toBe('1000')
    expect(head.rawPayload.length).toBe(0)
  })

  it('honours If-Range: a strong ETag or the exact Last-Modified, else the whole file', async () => {
    await withFiles()
    // A Last-Modified a second old or more is a strong validator.
    const past = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000)
    await utimes(join(t.storageRoot, 'a', 'b.bin'), past, past)
    const url = signed('a/b.bin')
    const whole = await t.app.inject({ url })
    const etag = whole.headers.etag as string
    const lastModified = whole.headers['last-modified'] as string
    expect(etag).toMatch(/^"[^"]+"$/)
    expect(lastModified).toBe(past.toUTCString())

    const cases: Array<[string, number]> = [
      [etag, 206],
      [`W/${etag}`, 200],
      ['"another"', 200],
      [lastModified, 206],
      [new Date(past.getTime() + 1000).toUTCString(), 200],
      [new Date(past.getTime() - 1000).toUTCString(), 200],
      ['not a date', 200],
    ]
    for (const [ifRange, status] of cases) {
      const res = await t.app.inject({ url, headers: { range: 'bytes=0-9', 'if-range': ifRange } })
      expect(res.statusCode, ifRange).toBe(status)
      expect(res.rawPayload.length, ifRange).toBe(status === 206 ? 10 : 1000)
    }
    // A mismatched If-Range voids even an unsatisfiable range: the whole file.
    const stale = await t.app.inject({
      url,
      headers: { range: 'bytes=5000-', 'if-range': '"another"' },
    })
    expect(stale.statusCode).toBe(200)
  })

  it('does not trust a Last-Modified from this very second in If-Range', async () => {
    await withFiles()
    const now = new Date()
    await utimes(join(t.storageRoot, 'a', 'b.bin'), now, now)
    const url = signed('a/b.bin')
    const lastModified = (await t.app.inject({ url })).headers['last-modified'] as string
    const res = await t.app.inject({
      url,
      headers: { range: 'bytes=0-9', 'if-range': lastModified },
    })
    expect(res.statusCode).toBe(200)
  })
})

describe('conditional requests (RFC 9110 §13)', () => {
  it('answers 304 for weak, listed and * If-None-Match, and If-Modified-Since', async () => {
    await withFiles()
    const url = signed('a/b.bin')
    const whole = await t.app.inject({ url })
    const etag = whole.headers.etag as string
    const lastModified = whole.headers['last-modified'] as string
    const cases: Array<[Record<string, string>, number]> = [
      [{ 'if-none-match': etag }, 304],
      [{ 'if-none-match': `W/${etag}` }, 304],
      [{ 'if-none-match': `"x", ${etag}` }, 304],
      [{ 'if-none-match': `"x",W/${etag} , "y"` }, 304],
      [{ 'if-none-match': '*' }, 304],
      [{ 'if-none-match': '"x", "y"' }, 200],
      [{ 'if-modified-since': lastModified }, 304],
      [{ 'if-modified-since': 'Thu, 01 Jan 1970 00:00:00 GMT' }, 200],
      // If-None-Match decides when both are sent.
      [{ 'if-none-match': '"x"', 'if-modified-since': lastModified }, 200],
      [{ 'if-none-match': etag, 'if-modified-since': 'Thu, 01 Jan 1970 00:00:00 GMT' }, 304],
    ]
    for (const [headers, status] of cases) {
      const res = await t.app.inject({ url, headers: { ...headers, range: 'bytes=0-9' } })
      const what = JSON.stringify(headers)
      expect(res.statusCode, what).toBe(status === 200 ? 206 : 304)
      if (status === 304) {
        expect(res.rawPayload.length, what).toBe(0)
        expect(res.headers.etag, what).toBe(etag)
      }
    }
    const head = await t.app.inject({
      method: 'HEAD',
      url,
      headers: { 'if-none-match': `W/${etag}` },
    })
    expect(head.statusCode).toBe(304)
    expect(whole.headers['x-content-type-options']).toBe('nosniff')
    expect(whole.headers['content-disposition']).toBe(
      `attachment; filename="b.bin"; filename*=UTF-8''b.bin`,
    )
  })
})
