import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import type { Storage } from '../ports/storage.ts'

export interface StorageUnderTest {
  storage: Storage
  cleanup?: () => Promise<void>
}

/** Keys every adapter must refuse with `INVALID_KEY`, on every method. */
export const HOSTILE_KEYS: readonly string[] = [
  '',
  '../x',
  'a/../../x',
  '..',
  '/etc/passwd',
  'a/\0b',
  'a\\..\\x',
  './x',
  'a//b',
  'a/',
  '.hidden/x',
]

const HOSTILE_PREFIXES: readonly string[] = ['', 'a', '../', '/etc/', 'a/../', 'a/../../', '\0/']

/**
 * The contract every `Storage` adapter passes. Only the port is used, so the same suite runs
 * against local disk, S3 (s3rver) and whatever comes next. Every test writes under its own
 * random prefix and does not assume an empty store.
 *
 * @example
 * storageConformance('localStorage', async () => {
 *   const root = await mkdtemp(join(tmpdir(), 'storage-'))
 *   return { storage: localStorage({ root }), cleanup: () => rm(root, { recursive: true }) }
 * })
 */
export function storageConformance(name: string, make: () => Promise<StorageUnderTest>): void {
  describe(`Storage conformance: ${name}`, () => {
    async function withStorage(test: (storage: Storage, prefix: string) => Promise<void>) {
      const { storage, cleanup } = await make()
      try {
        await test(storage, `conformance-${randomUUID()}/`)
      } finally {
        await cleanup?.()
      }
    }

    it('round-trips a multi-megabyte stream with its size, content and type', () =>
      withStorage(async (storage, prefix) => {
        const data = randomBytes(6 * 1024 * 1024 + 12345)
        const key = `${prefix}big/original.bin`
        const put = await storage.put(key, chunked(data, 64 * 1024), { contentType: 'audio/mpeg' })
        expect(put.size).toBe(data.length)

        const head = await storage.head(key)
        expect(head?.size).toBe(data.length)
        expect(head?.contentType).toBe('audio/mpeg')
        if (put.etag !== null) expect(head?.etag).toBe(put.etag)
        if (head?.lastModified != null) expect(head.lastModified).toBeInstanceOf(Date)

        const got = await storage.get(key)
        expect(got.size).toBe(data.length)
        expect(got.range).toBeNull()
        const body = await readAll(got.body)
        expect(body.length).toBe(data.length)
        expect(sha256(body)).toBe(sha256(data))
      }))

    it('accepts an async iterable body and an empty object', () =>
      withStorage(async (storage, prefix) => {
        async function* parts() {
          yield Buffer.from('hello, ')
          yield Buffer.from('world')
        }
        expect((await storage.put(`${prefix}iterable.txt`, parts())).size).toBe(12)
        expect((await readAll((await storage.get(`${prefix}iterable.txt`)).body)).toString()).toBe(
          'hello, world',
        )

        expect((await storage.put(`${prefix}empty.bin`, Readable.from([]))).size).toBe(0)
        expect((await storage.head(`${prefix}empty.bin`))?.size).toBe(0)
        const empty = await storage.get(`${prefix}empty.bin`)
        expect(empty.size).toBe(0)
        expect((await readAll(empty.body)).length).toBe(0)
      }))

    it('serves byte ranges and reports the whole size', () =>
      withStorage(async (storage, prefix) => {
        const data = randomBytes(1000)
        const key = `${prefix}ranges.bin`
        await storage.put(key, Readable.from([data]))

        const middle = await storage.get(key, { range: { start: 10, end: 19 } })
        expect(middle.size).toBe(1000)
        expect(middle.range).toEqual({ start: 10, end: 19 })
        expect(await readAll(middle.body)).toEqual(data.subarray(10, 20))

        const first = await storage.get(key, { range: { start: 0, end: 0 } })
        expect(first.range).toEqual({ start: 0, end: 0 })
        expect(await readAll(first.body)).toEqual(data.subarray(0, 1))

        const openEnd = await storage.get(key, { range: { start: 990 } })
        expect(openEnd.size).toBe(1000)
        expect(openEnd.range).toEqual({ start: 990, end: 999 })
        expect(await readAll(openEnd.body)).toEqual(data.subarray(990))

        const pastEnd = await storage.get(key, { range: { start: 995, end: 5000 } })
        expect(pastEnd.range).toEqual({ start: 995, end: 999 })
        expect(await readAll(pastEnd.body)).toEqual(data.subarray(995))

        await expect(storage.get(key, { range: { start: 1000 } })).rejects.toMatchObject({
          code: 'INVALID_RANGE',
        })
      }))

    it('returns null from head and NOT_FOUND from get for an absent object', () =>
      withStorage(async (storage, prefix) => {
        expect(await storage.head(`${prefix}absent.bin`)).toBeNull()
        await expect(storage.get(`${prefix}absent.bin`)).rejects.toMatchObject({
          name: 'NotFoundError',
          code: 'NOT_FOUND',
        })
        await expect(
          storage.get(`${prefix}absent.bin`, { range: { start: 0, end: 1 } }),
        ).rejects.toMatchObject({ code: 'NOT_FOUND' })
      }))

    it('overwrites an object with new content, size and etag', () =>
      withStorage(async (storage, prefix) => {
        const key = `${prefix}overwrite.bin`
        const first = await storage.put(key, Readable.from([Buffer.from('first version')]))
        const second = await storage.put(key, Readable.from([Buffer.from('second')]))
        expect(second.size).toBe(6)
        expect((await storage.head(key))?.size).toBe(6)
        expect((await readAll((await storage.get(key)).body)).toString()).toBe('second')
        if (first.etag !== null && second.etag !== null) expect(second.etag).not.toBe(first.etag)
      }))

    it('deletes an object, and deleting an absent one is fine', () =>
      withStorage(async (storage, prefix) => {
        const key = `${prefix}delete-me.bin`
        const keep = `${prefix}keep-me.bin`
        await storage.put(key, Readable.from([Buffer.from('x')]))
        await storage.put(keep, Readable.from([Buffer.from('y')]))
        await storage.delete(key)
        expect(await storage.head(key)).toBeNull()
        await storage.delete(key)
        await storage.delete(`${prefix}never-existed.bin`)
        expect(await storage.head(key)).toBeNull()
        expect((await storage.head(keep))?.size).toBe(1)
      }))

    it('deletePrefix removes everything under the prefix and nothing else', () =>
      withStorage(async (storage, prefix) => {
        const doomed = [`${prefix}a/1.bin`, `${prefix}a/2.bin`, `${prefix}a/sub/3.bin`]
        const kept = [`${prefix}ab/4.bin`, `${prefix}b/5.bin`, `${prefix}a.bin`, `${prefix}a-1`]
        for (const key of [...doomed, ...kept]) {
          await storage.put(key, Readable.from([Buffer.from(key)]))
        }
        await storage.deletePrefix(`${prefix}a/`)
        for (const key of doomed) expect(await storage.head(key)).toBeNull()
        for (const key of kept) expect((await storage.head(key))?.size).toBe(Buffer.byteLength(key))
        await storage.deletePrefix(`${prefix}a/`)
        await storage.deletePrefix(`${prefix}nothing-here/`)
        // The object named like a prefix without its slash is not under that prefix.
        await storage.put(`${prefix}solo`, Readable.from([Buffer.from('solo')]))
        await storage.deletePrefix(`${prefix}solo/`)
        expect((await storage.head(`${prefix}solo`))?.size).toBe(4)
        expect((await storage.head(`${prefix}ab/4.bin`))?.size).toBe(
          Buffer.byteLength(`${prefix}ab/4.bin`),
        )
      }))

    it('refuses hostile keys with INVALID_KEY on every method, reading and writing nothing', () =>
      withStorage(async (storage, prefix) => {
        const source = await mkdtemp(join(tmpdir(), 'storage-conformance-'))
        try {
          for (const key of HOSTILE_KEYS) {
            const body = new ProbeStream(Buffer.from('hostile'))
            await expect(
              storage.put(key, body),
              `put ${JSON.stringify(key)}`,
            ).rejects.toMatchObject({
              code: 'INVALID_KEY',
            })
            expect(body.reads, `put ${JSON.stringify(key)} read its body`).toBe(0)
            await expect(storage.get(key), `get ${JSON.stringify(key)}`).rejects.toMatchObject({
              code: 'INVALID_KEY',
            })
            await expect(storage.head(key), `head ${JSON.stringify(key)}`).rejects.toMatchObject({
              code: 'INVALID_KEY',
            })
            await expect(
              storage.delete(key),
              `delete ${JSON.stringify(key)}`,
            ).rejects.toMatchObject({
              code: 'INVALID_KEY',
            })
            await expect(storage.url(key), `url ${JSON.stringify(key)}`).rejects.toMatchObject({
              code: 'INVALID_KEY',
            })
            if (storage.localPath) {
              expect(
                thrown(() => storage.localPath?.(key)),
                `localPath ${JSON.stringify(key)}`,
              ).toMatchObject({ code: 'INVALID_KEY' })
            }
            if (storage.putFile) {
              const file = join(source, 'upload.bin')
              await writeFile(file, 'hostile')
              await expect(
                storage.putFile(key, file),
                `putFile ${JSON.stringify(key)}`,
              ).rejects.toMatchObject({ code: 'INVALID_KEY' })
              // Refused before taking the file: it is still the caller's.
              expect(await readFile(file, 'utf8')).toBe('hostile')
            }
          }
          for (const bad of HOSTILE_PREFIXES) {
            await expect(
              storage.deletePrefix(bad),
              `deletePrefix ${JSON.stringify(bad)}`,
            ).rejects.toMatchObject({
              code: 'INVALID_KEY',
            })
          }
          // A refused key did not land anywhere a valid key could name.
          expect(await storage.head(`${prefix}x`)).toBeNull()
          expect(await storage.head('x')).toBeNull()
        } finally {
          await rm(source, { recursive: true, force: true })
        }
      }))

    it('leaves no object when the body fails midway, and keeps the previous version', () =>
      withStorage(async (storage, prefix) => {
        const fresh = `${prefix}failed.bin`
        const failing = new ProbeStream(randomBytes(1024 * 1024), new Error('the upload broke'))
        await expect(storage.put(fresh, failing)).rejects.toThrow()
        expect(failing.reads).toBeGreaterThan(0)
        expect(await storage.head(fresh)).toBeNull()
        await expect(storage.get(fresh)).rejects.toMatchObject({ code: 'NOT_FOUND' })

        const existing = `${prefix}kept.bin`
        await storage.put(existing, Readable.from([Buffer.from('the good version')]))
        await expect(
          storage.put(
            existing,
            new ProbeStream(randomBytes(1024 * 1024), new Error('broke again')),
          ),
        ).rejects.toThrow()
        expect((await readAll((await storage.get(existing)).body)).toString()).toBe(
          'the good version',
        )
      }))

    it('leaves no object when the put is aborted through its signal', () =>
      withStorage(async (storage, prefix) => {
        const key = `${prefix}aborted.bin`
        const controller = new AbortController()
        const body = new ProbeStream(randomBytes(1024 * 1024), 'hang')
        const put = storage.put(key, body, { signal: controller.signal })
        await body.started
        controller.abort()
        await expect(put).rejects.toThrow()
        expect(await storage.head(key)).toBeNull()

        const already = `${prefix}aborted-before.bin`
        const untouched = new ProbeStream(Buffer.from('x'))
        await expect(
          storage.put(already, untouched, { signal: AbortSignal.abort() }),
        ).rejects.toThrow()
        expect(await storage.head(already)).toBeNull()
      }))

    it('gives a URL for a key', () =>
      withStorage(async (storage, prefix) => {
        const key = `${prefix}some/output-1.mp3`
        await storage.put(key, Readable.from([Buffer.from('x')]))
        const url = await storage.url(key)
        expect(typeof url).toBe('string')
        expect(url).toContain('output-1.mp3')
      }))

    it('exposes a readable local path when it has one', async () => {
      const { storage, cleanup } = await make()
      try {
        if (!storage.localPath) return
        const key = `conformance-${randomUUID()}/local.bin`
        await storage.put(key, Readable.from([Buffer.from('on disk')]))
        expect(await readFile(storage.localPath(key), 'utf8')).toBe('on disk')
      } finally {
        await cleanup?.()
      }
    })

    it('moves a local file under a key with putFile when it can', async () => {
      const { storage, cleanup } = await make()
      const source = await mkdtemp(join(tmpdir(), 'storage-conformance-'))
      try {
        if (!storage.putFile) return
        const data = randomBytes(300_000)
        const file = join(source, 'spool.bin')
        await writeFile(file, data)
        const key = `conformance-${randomUUID()}/moved.wav`
        const result = await storage.putFile(key, file, { contentType: 'audio/wav' })
        expect(result.size).toBe(data.length)
        expect(existsSync(file)).toBe(false)
        const head = await storage.head(key)
        expect(head?.size).toBe(data.length)
        expect(head?.contentType).toBe('audio/wav')
        expect(sha256(await readAll((await storage.get(key)).body))).toBe(sha256(data))
      } finally {
        await rm(source, { recursive: true, force: true })
        await cleanup?.()
      }
    })
  })
}

/**
 * A body that counts how often it is read. It yields `data` once, then ends, fails with an
 * error, or (`'hang'`) waits until it is destroyed: an upload that stalls midway.
 */
class ProbeStream extends Readable {
  reads = 0
  readonly started: Promise<void>
  #start!: () => void
  #data: Buffer
  #then: Error | 'hang' | 'end'

  constructor(data: Buffer, then: Error | 'hang' | 'end' = 'end') {
    super({ highWaterMark: 64 * 1024 })
    this.#data = data
    this.#then = then
    this.started = new Promise((resolve) => {
      this.#start = resolve
    })
  }

  override _read(): void {
    this.reads++
    if (this.reads === 1) {
      this.push(this.#data)
      this.#start()
      return
    }
    if (this.reads === 2) {
      const then = this.#then
      if (then === 'end') this.push(null)
      else if (then instanceof Error) process.nextTick(() => this.destroy(then))
    }
  }
}

function chunked(data: Buffer, size: number): Readable {
  let offset = 0
  return new Readable({
    read() {
      if (offset >= data.length) return void this.push(null)
      this.push(data.subarray(offset, offset + size))
      offset += size
    },
  })
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(Buffer.from(chunk))
  return Buffer.concat(chunks)
}

function thrown(run: () => unknown): unknown {
  try {
    run()
  } catch (error) {
    return error
  }
  return undefined
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}
