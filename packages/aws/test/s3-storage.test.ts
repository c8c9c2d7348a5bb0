import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { AbortedError, InvalidKeyError, NotFoundError } from '@transcodekit/core'
import { storageConformance } from '@transcodekit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type S3rverHandle, startS3rver } from '../../../test/fakes/s3rver-server.ts'
import { s3Storage } from '../src/index.ts'
import { s3rverClient } from './aws-clients.ts'

const BUCKET = 'tk-storage'
const MiB = 1024 * 1024

let s3: S3rverHandle
let client: ReturnType<typeof s3rverClient>

beforeAll(async () => {
  s3 = await startS3rver({ buckets: [BUCKET] })
  client = s3rverClient(s3.endpoint)
})

afterAll(async () => {
  client?.destroy()
  await s3?.close()
})

/** `total` bytes in 1 MiB chunks, each chunk different; fails after `failAfter` bytes if set. */
function generated(total: number, options: { failAfter?: number; stallAfter?: number } = {}) {
  let sent = 0
  let n = 0
  return new Readable({
    read() {
      if (options.failAfter !== undefined && sent >= options.failAfter) {
        this.destroy(new Error('injected source failure'))
        return
      }
      if (options.stallAfter !== undefined && sent >= options.stallAfter) return
      if (sent >= total) {
        this.push(null)
        return
      }
      const size = Math.min(MiB, total - sent)
      const chunk = Buffer.alloc(size, n++ % 251)
      chunk.writeUInt32BE(n, 0)
      sent += size
      this.push(chunk)
    },
  })
}

function wireOps(from: number) {
  return s3.requests.slice(from).map((r) => r.operation)
}

describe('s3Storage against s3rver', () => {
  it('stores, reads whole and by range, heads, deletes', async () => {
    const storage = s3Storage({ client, bucket: BUCKET, prefix: 'app/' })
    const data = Buffer.from('0123456789abcdefghij')
    const put = await storage.put('a/b/c.txt', Readable.from([data]), { contentType: 'text/plain' })
    expect(put.size).toBe(20)
    expect(put.etag).toBe(createHash('md5').update(data).digest('hex'))
    // the prefix is part of the object key in the bucket
    expect(await s3.getObject(BUCKET, 'app/a/b/c.txt')).toEqual(data)

    const ranged = await storage.get('a/b/c.txt', { range: { start: 5, end: 9 } })
    expect(ranged.range).toEqual({ start: 5, end: 9 })
    expect(ranged.size).toBe(20)
    expect(Buffer.concat(await ranged.body.toArray())).toEqual(Buffer.from('56789'))

    const tail = await storage.get('a/b/c.txt', { range: { start: 15 } })
    expect(tail.range).toEqual({ start: 15, end: 19 })
    expect(Buffer.concat(await tail.body.toArray()).toString()).toBe('fghij')

    const head = await storage.head('a/b/c.txt')
    expect(head).toMatchObject({ size: 20, contentType: 'text/plain' })
    await storage.delete('a/b/c.txt')
    expect(await storage.head('a/b/c.txt')).toBeNull()
    await expect(storage.get('a/b/c.txt')).rejects.toBeInstanceOf(NotFoundError)
    await storage.delete('a/b/c.txt')
  })

  it('rejects malformed keys before any request', async () => {
    const storage = s3Storage({ client, bucket: BUCKET })
    const before = s3.requests.length
    for (const key of ['../x', '/abs', 'a//b', 'a\\b', '']) {
      await expect(storage.put(key, Readable.from([Buffer.from('x')]))).rejects.toBeInstanceOf(
        InvalidKeyError,
      )
      await expect(storage.head(key)).rejects.toBeInstanceOf(InvalidKeyError)
    }
    expect(s3.requests.length).toBe(before)
  })

  it("with keyRule 'bucket', stores a client's keys as S3 does, refusing unsafe ones unsent", async () => {
    const storage = s3Storage({ client, bucket: BUCKET, keyRule: 'bucket' })
    const key = 'uploads/My Song (live)/canción.mp3'
    await storage.put(key, Readable.from([Buffer.from('song')]))
    expect(await s3.getObject(BUCKET, key)).toEqual(Buffer.from('song'))
    expect((await storage.head(key))?.size).toBe(4)
    const before = s3.requests.length
    for (const bad of ['../x', 'a/./b', 'a//b', 'a\\b', 'bell\u0007', '']) {
      await expect(storage.head(bad)).rejects.toBeInstanceOf(InvalidKeyError)
    }
    expect(s3.requests.length).toBe(before)
    // The default rule is the server's own: strict.
    await expect(s3Storage({ client, bucket: BUCKET }).head(key)).rejects.toBeInstanceOf(
      InvalidKeyError,
    )
  })

  it('deletePrefix walks every page of the listing and deletes in batches', async () => {
    const storage = s3Storage({ client, bucket: BUCKET, batchSize: 4 })
    for (let i = 0; i < 10; i++)
      await storage.put(`dp/x/${i}.bin`, Readable.from([Buffer.from([i])]))
    await storage.put('dp/keep.bin', Readable.from([Buffer.from('k')]))
    const from = s3.requests.length
    await storage.deletePrefix('dp/x/')
    const ops = wireOps(from)
    expect(await s3.listKeys(BUCKET, 'dp/')).toEqual(['dp/keep.bin'])
    expect(ops.filter((op) => op === 'ListObjects').length).toBe(3)
    expect(ops.filter((op) => op === 'DeleteObjects').length).toBe(3)
  })

  it('presigns a GET URL that serves the object with the asked disposition', async () => {
    const storage = s3Storage({ client, bucket: BUCKET })
    await storage.put('u/song.flac', Readable.from([Buffer.from('flac bytes')]))
    const url = await storage.url('u/song.flac', { expiresInSec: 60, filename: 'Café "1".flac' })
    const parsed = new URL(url)
    expect(parsed.searchParams.get('X-Amz-Expires')).toBe('60')
    expect(parsed.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/)
    const response = await fetch(url)
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('flac bytes')
    expect(response.headers.get('content-disposition')).toBe(
      `attachment; filename="Caf_ _1_.flac"; filename*=UTF-8''Caf%C3%A9%20%221%22.flac`,
    )
  })

  it('an injected source failure leaves no object and no pending multipart upload', async () => {
    const storage = s3Storage({ client, bucket: BUCKET, partSize: 5 * MiB, queueSize: 2 })
    const from = s3.requests.length
    await expect(
      storage.put('fail/big.bin', generated(40 * MiB, { failAfter: 12 * MiB })),
    ).rejects.toThrow('injected source failure')
    const ops = wireOps(from)
    expect(ops).toContain('CreateMultipartUpload')
    expect(ops).toContain('UploadPart')
    expect(ops.at(-1)).toBe('AbortMultipartUpload')
    expect(ops).not.toContain('CompleteMultipartUpload')
    expect(await s3.pendingMultipartUploads(BUCKET)).toEqual([])
    expect(await storage.head('fail/big.bin')).toBeNull()
  })

  it('S3 failing a part mid-upload leaves no object and no pending multipart upload', async () => {
    const storage = s3Storage({ client, bucket: BUCKET, partSize: 5 * MiB, queueSize: 1 })
    const from = s3.requests.length
    // Every attempt of the SDK's retries fails.
    s3.failNext('UploadPart', 10)
    await expect(storage.put('s3fail/big.bin', generated(20 * MiB))).rejects.toMatchObject({
      name: 'InternalError',
    })
    s3.failNext('UploadPart', 0)
    const ops = wireOps(from)
    expect(ops).toContain('CreateMultipartUpload')
    expect(ops.at(-1)).toBe('AbortMultipartUpload')
    expect(ops).not.toContain('CompleteMultipartUpload')
    expect(await s3.pendingMultipartUploads(BUCKET)).toEqual([])
    expect(await storage.head('s3fail/big.bin')).toBeNull()
  })

  it('a client abort (stalled source) leaves no object and no pending multipart upload', async () => {
    const storage = s3Storage({ client, bucket: BUCKET, partSize: 5 * MiB, queueSize: 2 })
    const from = s3.requests.length
    const controller = new AbortController()
    const uploading = storage.put('abort/big.bin', generated(40 * MiB, { stallAfter: 16 * MiB }), {
      signal: controller.signal,
    })
    // Abort once parts are on the server and the source has stalled (a client gone quiet).
    await waitFor(
      () => s3.requests.slice(from).filter((r) => r.operation === 'UploadPart').length >= 2,
    )
    expect(await s3.pendingMultipartUploads(BUCKET)).toHaveLength(1)
    controller.abort()
    await expect(uploading).rejects.toBeInstanceOf(AbortedError)
    const ops = wireOps(from)
    const created = s3.requests.slice(from).find((r) => r.operation === 'CreateMultipartUpload')
    const aborted = s3.requests.slice(from).find((r) => r.operation === 'AbortMultipartUpload')
    expect(created).toBeDefined()
    expect(aborted?.path).toBe(`/${BUCKET}/abort/big.bin`)
    expect(ops).not.toContain('CompleteMultipartUpload')
    expect(await s3.pendingMultipartUploads(BUCKET)).toEqual([])
    expect(await storage.head('abort/big.bin')).toBeNull()
  })

  it('an already aborted signal sends nothing', async () => {
    const storage = s3Storage({ client, bucket: BUCKET })
    const from = s3.requests.length
    await expect(
      storage.put('never.bin', generated(MiB), { signal: AbortSignal.abort() }),
    ).rejects.toBeInstanceOf(AbortedError)
    expect(s3.requests.length).toBe(from)
  })

  it('streams 200 MB with bounded memory and stores every byte', async () => {
    const storage = s3Storage({ client, bucket: BUCKET, partSize: 8 * MiB, queueSize: 4 })
    const total = 200 * MiB
    const hash = createHash('sha256')
    const source = generated(total)
    source.on('data', (chunk: Buffer) => hash.update(chunk))
    globalThis.gc?.()
    const baseline = process.memoryUsage().rss
    let peak = baseline
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss)
    }, 50)
    try {
      const put = await storage.put('big/200mb.bin', source)
      expect(put.size).toBe(total)
    } finally {
      clearInterval(sampler)
    }
    const growthMiB = (peak - baseline) / MiB
    console.log(
      `200 MB upload: RSS baseline ${(baseline / MiB).toFixed(0)} MiB, peak growth ${growthMiB.toFixed(0)} MiB`,
    )
    // The client holds at most queueSize × partSize (32 MiB) of parts, and s3rver, in this same
    // process, the parts it is receiving (44–73 MiB in all on a quiet machine, up to 106 under
    // load); a client that held the file whole would add 200 MiB by itself.
    expect(growthMiB).toBeLessThan(150)
    const head = await storage.head('big/200mb.bin')
    expect(head?.size).toBe(total)
    const stored = createHash('sha256')
    for await (const chunk of (await storage.get('big/200mb.bin')).body) stored.update(chunk)
    expect(stored.digest('hex')).toBe(hash.digest('hex'))
    await storage.delete('big/200mb.bin')
  }, 180_000)
})

async function waitFor(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const start = Date.now()
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

storageConformance('s3 (s3rver)', async () => {
  const server = await startS3rver({ buckets: ['tk-conformance'] })
  const s3client = s3rverClient(server.endpoint)
  return {
    storage: s3Storage({ client: s3client, bucket: 'tk-conformance', prefix: 'app/' }),
    cleanup: async () => {
      // The client passed in is never destroyed by the storage: we made it, we close it.
      s3client.destroy()
      expect(await server.pendingMultipartUploads('tk-conformance')).toEqual([])
      await server.close()
    },
  }
})
