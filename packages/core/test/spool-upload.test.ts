import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TooLargeError } from '../src/errors.ts'
import { FileHasher } from '../src/spool/file-hasher.ts'
import { spoolUpload } from '../src/spool/spool-upload.ts'

const MIB = 1024 * 1024

/** `total` random bytes in chunks of uneven sizes, as a socket would deliver them. */
function* chunks(data: Buffer): Generator<Buffer> {
  let at = 0
  for (let i = 0; at < data.length; i++) {
    const size = [65_536, 1, 100_003, 16_384, 777][i % 5]!
    yield data.subarray(at, at + size)
    at += size
  }
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

describe('spoolUpload', () => {
  let dir: string
  const hasher = new FileHasher()
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tk-spool-'))
  })
  afterAll(async () => {
    await hasher.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('writes the body once and hashes it on the thread, across many hash steps', async () => {
    const data = randomBytes(37 * MIB + 12_345)
    const path = join(dir, 'big')
    const spooled = await spoolUpload(chunks(data), path, { maxBytes: data.length, hasher })
    expect(spooled).toEqual({
      size: data.length,
      sha256: sha256(data),
      head: data.subarray(0, 4096),
    })
    expect((await readFile(path)).equals(data)).toBe(true)
  })

  it('hashes a body in-line up to 1 MiB, and hands one a byte longer to the thread', async () => {
    for (const length of [0, 1, 4095, 4097, MIB, MIB + 1]) {
      const data = randomBytes(length)
      const path = join(dir, `edge-${length}`)
      const spooled = await spoolUpload(chunks(data), path, { maxBytes: MIB + 1, hasher })
      expect(spooled).toEqual({
        size: length,
        sha256: sha256(data),
        head: data.subarray(0, 4096),
      })
    }
  })

  it('hashes an empty body and several files at once, each its own', async () => {
    const bodies = [Buffer.alloc(0), randomBytes(5 * MIB), randomBytes(9 * MIB + 1)]
    const results = await Promise.all(
      bodies.map((body, i) =>
        spoolUpload(chunks(body), join(dir, `many-${i}`), { maxBytes: 10 * MIB, hasher }),
      ),
    )
    expect(results.map(({ size, sha256 }) => ({ size, sha256 }))).toEqual(
      bodies.map((body) => ({ size: body.length, sha256: sha256(body) })),
    )
  })

  it('refuses a body over the limit, and the hasher still serves the next file', async () => {
    const data = randomBytes(6 * MIB)
    const path = join(dir, 'over')
    await expect(
      spoolUpload(chunks(data), path, { maxBytes: 6 * MIB - 1, hasher }),
    ).rejects.toBeInstanceOf(TooLargeError)
    // Left for the caller to remove, never complete, and never past the limit: a chunk is
    // counted before it reaches the file.
    expect((await stat(path)).size).toBeLessThanOrEqual(6 * MIB - 1)
    const next = randomBytes(MIB)
    const spooled = await spoolUpload(chunks(next), join(dir, 'next'), { maxBytes: MIB, hasher })
    expect(spooled.sha256).toBe(sha256(next))
  })

  it('fails an aborted body with the signal', async () => {
    const controller = new AbortController()
    async function* stalls(): AsyncGenerator<Buffer> {
      yield randomBytes(5 * MIB)
      controller.abort(new Error('client went away'))
      yield randomBytes(MIB)
    }
    await expect(
      spoolUpload(stalls(), join(dir, 'aborted'), {
        maxBytes: 10 * MIB,
        hasher,
        signal: controller.signal,
      }),
    ).rejects.toThrow()
  })
})

describe('FileHasher', () => {
  it('fails a file shorter than its announced end, and one that vanished', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tk-hasher-'))
    const hasher = new FileHasher()
    try {
      const path = join(dir, 'short')
      await spoolUpload(chunks(randomBytes(100)), path, { maxBytes: 100, hasher })
      await expect(hasher.begin(path).end(101)).rejects.toThrow(/100 bytes, not 101/)
      await expect(hasher.begin(join(dir, 'missing')).end(1)).rejects.toThrow(/ENOENT/)
    } finally {
      await hasher.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('fails the files in progress when it is closed', async () => {
    const hasher = new FileHasher()
    const pending = hasher.begin('/nonexistent-but-never-read').end(0)
    await hasher.close()
    await expect(pending).rejects.toThrow()
  })
})
