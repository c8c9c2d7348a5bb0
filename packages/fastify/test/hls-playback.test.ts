import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { promisify } from 'node:util'
import { s3Storage } from '@transcodekit/aws'
import {
  createTranscoder,
  ffmpegEngine,
  ffprobePath,
  isHlsSegmentOf,
  memoryRepository,
  type TranscodeService,
} from '@transcodekit/core'
import { makeVideo } from '@transcodekit/core/testing'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type S3rverHandle, startS3rver } from '../../../test/fakes/s3rver-server.ts'
import { s3rverClient } from '../../aws/test/aws-clients.ts'
import { signSegmentUris } from '../src/http/hls-playlist.ts'
import transcodekit, { FileUrlSigner } from '../src/index.ts'
import { makeApp, multipart, type TestApp, waitFor } from './helpers.ts'

const execFileAsync = promisify(execFile)
const secret = randomBytes(32).toString('hex')

let fixtures: string
let video: Buffer
beforeAll(async () => {
  fixtures = await mkdtemp(join(tmpdir(), 'transcodekit-hls-play-'))
  // 12 seconds: a full 10-second segment and a short last one.
  video = await readFile(
    await makeVideo(join(fixtures, 'clip.mp4'), { seconds: 12, width: 320, height: 240 }),
  )
})
afterAll(async () => {
  await rm(fixtures, { recursive: true, force: true })
})

let t: TestApp
afterEach(async () => {
  await t?.close()
})

interface OutputView {
  name: string
  url: string
  downloadUrl: string
}

/** Uploads the clip for `presets` and waits for the job to complete. */
async function transcode(app: FastifyInstance, presets: string[]): Promise<OutputView[]> {
  const form = multipart([
    ...presets.map((value) => ({ name: 'presets', value })),
    { name: 'file', filename: 'clip.mp4', contentType: 'video/mp4', data: video },
  ])
  const created = await app.inject({
    method: 'POST',
    url: '/uploads',
    headers: form.headers,
    payload: form.payload,
  })
  expect(created.statusCode).toBe(201)
  const { job } = created.json()
  const done = await waitFor(
    async () => {
      const current = (await app.inject({ url: `/jobs/${job.id}` })).json()
      if (current.state === 'error') throw new Error(`the job failed: ${JSON.stringify(current)}`)
      return current.state === 'complete' ? current : null
    },
    60_000,
    'the job to complete',
  )
  return done.outputs
}

/** The URI lines of a playlist. */
function uris(playlist: string): string[] {
  return playlist.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#'))
}

/** A path and query, as the client resolves `uri` against the playlist's URL. */
function resolved(uri: string, playlistUrl: string): string {
  const url = new URL(uri, new URL(playlistUrl, 'http://player.test'))
  return `${url.pathname}${url.search}`
}

/** The storage key a `/files/…` path names. */
function keyOf(path: string): string {
  return decodeURIComponent(new URL(path, 'http://player.test').pathname.slice('/files/'.length))
}

function flipped(signature: string): string {
  return (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1)
}

describe('HLS through signed file URLs', () => {
  it('plays from the playlist URL alone; segment signatures open nothing else', async () => {
    t = await makeApp({ fileUrlSecret: secret })
    const [hls, mp4] = await transcode(t.app, ['hls-400k', 'mp4-480p'])
    expect(hls!.name).toBe('hls-400k')

    const served = await t.app.inject({ url: hls!.url })
    expect(served.statusCode).toBe(200)
    expect(served.headers['content-type']).toBe('application/vnd.apple.mpegurl')
    expect(served.headers['content-disposition']).toMatch(/^inline;/)
    const playlist = served.body
    const expires = new URL(hls!.url, 'http://player.test').searchParams.get('expires')
    const segments = uris(playlist)
    expect(segments.length).toBe(2)
    for (const uri of segments) {
      // Still relative, signed until the playlist URL's own expiry.
      expect(uri).toMatch(
        new RegExp(`^hls-400k-\\d{5}\\.ts\\?expires=${expires}&signature=[\\w-]{43}$`),
      )
      const path = resolved(uri, hls!.url)
      const segment = await t.app.inject({ url: path })
      expect(segment.statusCode, uri).toBe(200)
      expect(segment.headers['content-type'], uri).toBe('video/mp2t')
      expect(segment.rawPayload).toEqual(await readFile(join(t.storageRoot, keyOf(path))))
    }
    // Nothing else of the stored playlist changed.
    const stored = await readFile(join(t.storageRoot, keyOf(hls!.url)), 'utf8')
    expect(playlist.replace(/\?expires=\d+&signature=[\w-]{43}/g, '')).toBe(stored)

    // The download URL's playlist plays too, its segments signed inline.
    const saved = await t.app.inject({ url: hls!.downloadUrl })
    expect(saved.statusCode).toBe(200)
    expect(saved.headers['content-disposition']).toMatch(/^attachment; filename="clip\.m3u8"/)
    for (const uri of uris(saved.body)) {
      expect((await t.app.inject({ url: resolved(uri, hls!.downloadUrl) })).statusCode).toBe(200)
    }

    // A range of the served playlist is a range of the signed text.
    const head = await t.app.inject({ url: hls!.url, headers: { range: 'bytes=0-6' } })
    expect(head.statusCode).toBe(206)
    expect(head.body).toBe('#EXTM3U')
    expect(head.headers['content-range']).toBe(`bytes 0-6/${Buffer.byteLength(playlist)}`)
    const etag = served.headers.etag as string
    const again = await t.app.inject({ url: hls!.url, headers: { 'if-none-match': etag } })
    expect(again.statusCode).toBe(304)

    // A segment's signature opens that segment only.
    const first = new URL(resolved(segments[0]!, hls!.url), 'http://player.test')
    const signature = first.searchParams.get('signature')!
    const folder = first.pathname.slice(0, first.pathname.lastIndexOf('/') + 1)
    const [, assetId, jobId] = /^\/files\/(?:.*\/)?([^/]+)\/([^/]+)\/$/.exec(folder)!
    const mp4Path = new URL(mp4!.url, 'http://player.test').pathname
    const refused: Array<[string, string]> = [
      ['altered signature', `${first.pathname}?expires=${expires}&signature=${flipped(signature)}`],
      ['later expiry', `${first.pathname}?expires=${Number(expires) + 60}&signature=${signature}`],
      ['the other segment', `${folder}hls-400k-00001.ts${first.search}`],
      ['the other output', `${mp4Path}${first.search}`],
      ['the playlist', `${new URL(hls!.url, 'http://player.test').pathname}${first.search}`],
      ['another job', `${folder.replace(jobId!, randomBytes(8).toString('hex'))}${segments[0]}`],
      ['the original', `${folder.replace(`${jobId}/`, '')}original.mp4${first.search}`],
      ['unsigned', first.pathname],
    ]
    expect(assetId).toBeTruthy()
    for (const [what, path] of refused) {
      const res = await t.app.inject({ url: path })
      expect(res.statusCode, what).toBe(403)
      expect(res.json().code, what).toBe('TRANSCODEKIT_FILE_URL_INVALID')
    }
    // The other output still plays at its own URL.
    expect((await t.app.inject({ url: mp4!.url })).statusCode).toBe(200)
  })

  it('ffprobe reads every packet over HTTP from the playlist URL alone', async () => {
    t = await makeApp({ fileUrlSecret: secret })
    const [hls] = await transcode(t.app, ['hls-400k'])
    await t.app.listen({ host: '127.0.0.1', port: 0 })
    const { port } = t.app.server.address() as AddressInfo
    const overHttp = await countPackets(`http://127.0.0.1:${port}${hls!.url}`, 'http,tcp')
    const onDisk = await countPackets(`file:${join(t.storageRoot, keyOf(hls!.url))}`, 'file')
    expect(overHttp).toEqual(onDisk)
    expect(overHttp.video).toBeGreaterThan(250)
  })
})

describe('a playlist too large to sign', () => {
  it('answers 500, and a playlist within the bound is signed', async () => {
    t = await makeApp({ worker: false, fileUrlSecret: secret })
    const signer = new FileUrlSigner(secret)
    const line = '#EXTINF:1.000000,\nbig-00000.ts\n'
    const within = `#EXTM3U\n${line.repeat(Math.floor((1024 * 1024 - 8) / line.length))}`
    const beyond = `${within}${line}`
    await t.service.storage.put('a/j/big.m3u8', Readable.from([Buffer.from(within)]))
    await t.service.storage.put('a/j/huge.m3u8', Readable.from([Buffer.from(beyond)]))
    const big = await t.app.inject({
      url: `/files/a/j/big.m3u8?${signer.sign('a/j/big.m3u8', { expiresInSec: 60 })}`,
    })
    expect(big.statusCode).toBe(200)
    expect(big.body).toMatch(/^big-00000\.ts\?expires=\d+&signature=[\w-]{43}$/m)
    const huge = await t.app.inject({
      url: `/files/a/j/huge.m3u8?${signer.sign('a/j/huge.m3u8', { expiresInSec: 60 })}`,
    })
    expect(huge.statusCode).toBe(500)
    expect(huge.json().code).toBe('TRANSCODEKIT_INTERNAL')
  })
})

describe('HLS with S3 storage (s3rver)', () => {
  let s3: S3rverHandle
  let client: ReturnType<typeof s3rverClient>
  let dir: string
  let service: TranscodeService | undefined
  let app: FastifyInstance | undefined
  beforeAll(async () => {
    s3 = await startS3rver({ buckets: ['tk-hls'] })
    client = s3rverClient(s3.endpoint)
    dir = await mkdtemp(join(tmpdir(), 'transcodekit-hls-s3-'))
  })
  afterAll(async () => {
    await app?.close()
    await service?.close()
    client?.destroy()
    await s3?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('serves the playlist with presigned segment URLs; the other outputs stay presigned by S3', async () => {
    service = createTranscoder({
      storage: s3Storage({ client, bucket: 'tk-hls' }),
      engine: ffmpegEngine(),
      repository: memoryRepository(),
      tmpDir: dir,
      worker: { concurrency: 1 },
      pollIntervalMs: 200,
    })
    app = Fastify({ logger: false })
    await app.register(transcodekit, { service, fileUrlSecret: secret })
    const [hls, mp4] = await transcode(app, ['hls-400k', 'mp4-480p'])
    expect(mp4!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/tk-hls\/.+X-Amz-Signature=/)
    expect(hls!.url).toMatch(/^\/files\/.+\/hls-400k\.m3u8\?expires=\d+&signature=[\w-]{43}$/)

    const served = await app.inject({ url: hls!.url })
    expect(served.statusCode).toBe(200)
    expect(served.headers['content-type']).toBe('application/vnd.apple.mpegurl')
    const segments = uris(served.body)
    expect(segments.length).toBe(2)
    const expires = Number(new URL(hls!.url, 'http://player.test').searchParams.get('expires'))
    const playlistKey = keyOf(hls!.url)
    for (const [n, uri] of segments.entries()) {
      const url = new URL(uri)
      expect(decodeURIComponent(url.pathname)).toBe(
        `/tk-hls/${playlistKey.replace('.m3u8', `-0000${n}.ts`)}`,
      )
      const segment = await fetch(uri)
      expect(segment.status, uri).toBe(200)
      const stored = await service.storage.get(playlistKey.replace('.m3u8', `-0000${n}.ts`))
      expect(Buffer.from(await segment.arrayBuffer())).toEqual(
        Buffer.concat(await stored.body.toArray()),
      )
      // Presigned until the playlist URL's own expiry (s3rver checks no signature: S3 does).
      expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/)
      const signedAt = Date.parse(
        url.searchParams
          .get('X-Amz-Date')!
          .replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'),
      )
      const until = signedAt / 1000 + Number(url.searchParams.get('X-Amz-Expires'))
      expect(until).toBeGreaterThan(expires - 5)
      expect(until).toBeLessThanOrEqual(expires)
    }

    // Only playlists are served here: a signature for another key opens nothing.
    const mp4Key = decodeURIComponent(new URL(mp4!.url).pathname.slice('/tk-hls/'.length))
    const signer = new FileUrlSigner(secret)
    const other = await app.inject({
      url: `/files/${mp4Key}?${signer.sign(mp4Key, { expiresInSec: 60 })}`,
    })
    expect(other.statusCode).toBe(404)
    const query = new URL(hls!.url, 'http://player.test').search
    const bent = await app.inject({ url: `/files/${mp4Key}${query}` })
    expect(bent.statusCode).toBe(403)

    await app.listen({ host: '127.0.0.1', port: 0 })
    const { port } = app.server.address() as AddressInfo
    const packets = await countPackets(`http://127.0.0.1:${port}${hls!.url}`, 'http,tcp')
    expect(packets.video).toBeGreaterThan(250)
  })
})

/** Packets per stream type that ffprobe reads through the whole playlist. */
async function countPackets(
  url: string,
  protocols: string,
): Promise<{ video: number; audio: number }> {
  const { stdout } = await execFileAsync(ffprobePath(), [
    '-v',
    'error',
    '-protocol_whitelist',
    protocols,
    '-count_packets',
    '-show_entries',
    'stream=codec_type,nb_read_packets',
    '-print_format',
    'json',
    url,
  ])
  const { streams } = JSON.parse(stdout) as {
    streams: Array<{ codec_type: string; nb_read_packets: string }>
  }
  const count = (type: string) =>
    Number(streams.find((s) => s.codec_type === type)?.nb_read_packets)
  return { video: count('video'), audio: count('audio') }
}

describe('signSegmentUris', () => {
  const sign = (key: string, uri: string) => `${uri}?sig=${key}`
  const key = 'assets/a1/j1/hls-1m.m3u8'

  it("signs its own output's segments and leaves every other URI as written", async () => {
    const playlist = [
      '#EXTM3U',
      '#EXTINF:10.0,',
      'hls-1m-00000.ts',
      '#EXTINF:10.0,',
      'hls-1m-00001.ts\r',
      'hls-1m5-00000.ts',
      'hls-1m-x.ts',
      'mp4-480p.mp4',
      '../j2/hls-1m-00000.ts',
      'sub/hls-1m-00000.ts',
      '/files/assets/a1/j1/hls-1m-00002.ts',
      'https://elsewhere.test/hls-1m-00003.ts',
      '',
    ].join('\n')
    const lines = (await signSegmentUris(playlist, key, sign)).split('\n')
    expect(lines[2]).toBe('hls-1m-00000.ts?sig=assets/a1/j1/hls-1m-00000.ts')
    expect(lines[4]).toBe('hls-1m-00001.ts?sig=assets/a1/j1/hls-1m-00001.ts\r')
    expect(lines.slice(5)).toEqual(playlist.split('\n').slice(5))
  })

  it('isHlsSegmentOf grants the pattern the engine writes, in the same folder only', () => {
    expect(isHlsSegmentOf(key, 'assets/a1/j1/hls-1m-00000.ts')).toBe(true)
    expect(isHlsSegmentOf(key, 'assets/a1/j1/hls-1m-123456.ts')).toBe(true)
    expect(isHlsSegmentOf(key, 'assets/a1/j1/hls-1m-0000.ts')).toBe(false)
    expect(isHlsSegmentOf(key, 'assets/a1/j1/hls-1m-00000.mp4')).toBe(false)
    expect(isHlsSegmentOf(key, 'assets/a1/j2/hls-1m-00000.ts')).toBe(false)
    expect(isHlsSegmentOf(key, 'assets/a1/j1/x/hls-1m-00000.ts')).toBe(false)
    expect(isHlsSegmentOf(key, 'assets/a1/j1/hls-1m.m3u8')).toBe(false)
  })
})
