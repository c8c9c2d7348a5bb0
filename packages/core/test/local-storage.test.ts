import { randomBytes } from 'node:crypto'
import { existsSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { localStorage } from '../src/storage/local-storage.ts'
import { storageConformance } from '../src/testing/storage-suite.ts'

storageConformance('localStorage', async () => {
  const root = await mkdtemp(join(tmpdir(), 'local-storage-'))
  return {
    storage: localStorage({ root: join(root, 'files') }),
    cleanup: () => rm(root, { recursive: true, force: true }),
  }
})

describe('localStorage', () => {
  let dir: string
  let root: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'local-storage-'))
    root = join(dir, 'files')
  })
  afterEach(() => rm(dir, { recursive: true, force: true }))

  it('writes under the root, creating it on first use', async () => {
    const storage = localStorage({ root })
    expect(existsSync(root)).toBe(false)
    await storage.put('a/b/c.mp3', Readable.from([Buffer.from('abc')]))
    expect(await readFile(join(root, 'a', 'b', 'c.mp3'), 'utf8')).toBe('abc')
    expect(storage.localPath('a/b/c.mp3')).toBe(join(root, 'a', 'b', 'c.mp3'))
  })

  it('keeps folders and files for its own user only (0700, 0600), moved-in files too', async () => {
    const storage = localStorage({ root })
    await storage.put('a/b/c.mp3', Readable.from([Buffer.from('abc')]), {
      contentType: 'audio/mpeg',
    })
    const outside = join(dir, 'made-by-ffmpeg.wav')
    await writeFile(outside, 'wav', { mode: 0o644 })
    await storage.putFile('a/d.wav', outside)
    const mode = (path: string) => statSync(path).mode & 0o777
    for (const folder of [root, join(root, 'a'), join(root, 'a', 'b'), join(root, '.tmp')]) {
      expect(mode(folder), folder).toBe(0o700)
    }
    expect(mode(join(root, 'a', 'b', 'c.mp3'))).toBe(0o600)
    expect(mode(join(root, 'a', 'd.wav'))).toBe(0o600)
  })

  it('refuses a key that goes through a symbolic link out of the root', async () => {
    const outside = join(dir, 'outside')
    await mkdir(outside)
    await writeFile(join(outside, 'secret.txt'), 'secret')
    await mkdir(root)
    await symlink(outside, join(root, 'escape'))
    await symlink(join(outside, 'secret.txt'), join(root, 'secret.txt'))
    const storage = localStorage({ root })

    for (const key of ['escape/secret.txt', 'escape/new/file.bin', 'secret.txt']) {
      await expect(storage.get(key), key).rejects.toMatchObject({ code: 'INVALID_KEY' })
      await expect(storage.head(key), key).rejects.toMatchObject({ code: 'INVALID_KEY' })
      await expect(storage.put(key, Readable.from([Buffer.from('x')])), key).rejects.toMatchObject({
        code: 'INVALID_KEY',
      })
      await expect(storage.delete(key), key).rejects.toMatchObject({ code: 'INVALID_KEY' })
      expect(() => storage.localPath(key)).toThrow(/outside the root/)
    }
    await expect(storage.deletePrefix('escape/')).rejects.toMatchObject({ code: 'INVALID_KEY' })
    expect(await readdir(outside)).toEqual(['secret.txt'])
    expect(await readFile(join(outside, 'secret.txt'), 'utf8')).toBe('secret')
  })

  it('does not follow a symbolic link even when it stays inside the root', async () => {
    const storage = localStorage({ root })
    await storage.put('real.bin', Readable.from([Buffer.from('real')]))
    await symlink(join(root, 'real.bin'), join(root, 'link.bin'))
    await expect(storage.head('link.bin')).rejects.toMatchObject({ code: 'INVALID_KEY' })
    await expect(storage.get('link.bin')).rejects.toMatchObject({ code: 'INVALID_KEY' })
  })

  it('writes nothing outside the root for a hostile key', async () => {
    const storage = localStorage({ root })
    await mkdir(root)
    for (const key of ['../x', 'a/../../x', `${dir}/x`, '/x', 'x\\..\\..\\x']) {
      await expect(storage.put(key, Readable.from([Buffer.from('x')]))).rejects.toMatchObject({
        code: 'INVALID_KEY',
      })
    }
    expect((await readdir(dir)).sort()).toEqual(['files'])
    expect(existsSync('/x')).toBe(false)
    expect(await readdir(root)).toEqual([])
  })

  it("takes a bucket's keys as S3 does (spaces, accents), but none that leaves the root", async () => {
    const storage = localStorage({ root, keyRule: 'bucket' })
    for (const key of ['uploads/My Song (live).mp3', 'música/canción.wav', '.hidden/a..b']) {
      await storage.put(key, Readable.from([Buffer.from(key)]))
      expect(await readFile(join(root, ...key.split('/')), 'utf8')).toBe(key)
      expect((await storage.head(key))?.size).toBe(Buffer.byteLength(key))
    }
    expect(await storage.url('a b/ç.mp3')).toBe('/files/a%20b/%C3%A7.mp3')
    const hostile = [
      '../x',
      'a/../../x',
      'a/./x',
      '/x',
      'a//x',
      'a/',
      'x\\..\\x',
      'a\u0000b',
      'line\nbreak',
      'c1\u0085',
      'lone\uD800',
      '.tmp/x',
      '.meta/x.json',
      'é'.repeat(126),
      `${'a/'.repeat(512)}a`,
    ]
    for (const key of hostile) {
      await expect(storage.put(key, Readable.from([Buffer.from('x')]))).rejects.toMatchObject({
        code: 'INVALID_KEY',
      })
    }
    // The server's own storage stays strict.
    await expect(
      localStorage({ root }).put('My Song.mp3', Readable.from([Buffer.from('x')])),
    ).rejects.toMatchObject({ code: 'INVALID_KEY' })
    expect((await readdir(root)).sort()).toEqual(['.hidden', '.tmp', 'música', 'uploads'])
  })

  it('leaves no temp file after a failed or aborted put', async () => {
    const storage = localStorage({ root })
    async function* failing() {
      yield randomBytes(256 * 1024)
      throw new Error('client went away')
    }
    await expect(storage.put('a/failed.bin', failing())).rejects.toThrow('client went away')

    const controller = new AbortController()
    async function* stalling() {
      yield randomBytes(256 * 1024)
      controller.abort()
      yield randomBytes(256 * 1024)
    }
    await expect(
      storage.put('a/aborted.bin', stalling(), { signal: controller.signal }),
    ).rejects.toMatchObject({ code: 'ABORTED' })

    expect(await readdir(join(root, '.tmp'))).toEqual([])
    expect(existsSync(join(root, 'a', 'failed.bin'))).toBe(false)
    expect(existsSync(join(root, 'a', 'aborted.bin'))).toBe(false)
  })

  it('removes temp files left by a crashed process, not the ones being written', async () => {
    const temp = join(root, '.tmp')
    await mkdir(temp, { recursive: true })
    await writeFile(join(temp, 'crashed'), 'left over')
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 60 * 60 * 1000)
    await utimes(join(temp, 'crashed'), twoDaysAgo, twoDaysAgo)
    await writeFile(join(temp, 'in-flight'), 'another process')
    const storage = localStorage({ root })
    await storage.put('after/crash.bin', Readable.from([Buffer.from('x')]))
    expect(await readdir(temp)).toEqual(['in-flight'])
  })

  it('never shows a partial file while a put is streaming', async () => {
    const storage = localStorage({ root })
    let release!: () => void
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    let sawTarget: boolean | null = null
    async function* slow() {
      yield Buffer.alloc(100_000, 1)
      await gate
      yield Buffer.alloc(100_000, 2)
    }
    const put = storage.put('slow/file.bin', slow())
    // Wait until the first chunk is on disk in the temp folder.
    for (let i = 0; i < 1000; i++) {
      const temps = await readdir(join(root, '.tmp')).catch(() => [])
      if (temps.length > 0 && statSync(join(root, '.tmp', temps[0]!)).size > 0) break
      await new Promise((resolve) => setImmediate(resolve))
    }
    sawTarget = existsSync(join(root, 'slow', 'file.bin'))
    expect(await storage.head('slow/file.bin')).toBeNull()
    release()
    expect((await put).size).toBe(200_000)
    expect(sawTarget).toBe(false)
    expect((await storage.head('slow/file.bin'))?.size).toBe(200_000)
  })

  it('keeps the content type given to put, else infers it from the extension', async () => {
    const storage = localStorage({ root })
    await storage.put('t/a.bin', Readable.from([Buffer.from('x')]), {
      contentType: 'audio/x-custom',
    })
    await storage.put('t/b.flac', Readable.from([Buffer.from('x')]))
    await storage.put('t/c.unknown', Readable.from([Buffer.from('x')]))
    expect((await storage.head('t/a.bin'))?.contentType).toBe('audio/x-custom')
    expect((await storage.head('t/b.flac'))?.contentType).toBe('audio/flac')
    expect((await storage.head('t/c.unknown'))?.contentType).toBeNull()

    // An overwrite without a type drops the old one; a sidecar never applies to another file.
    await storage.put('t/a.bin', Readable.from([Buffer.from('y')]))
    expect((await storage.head('t/a.bin'))?.contentType).toBeNull()
    await storage.put('t/d.mp3', Readable.from([Buffer.from('x')]), { contentType: 'audio/x-old' })
    await rm(join(root, 't', 'd.mp3'))
    await writeFile(join(root, 't', 'd.mp3'), 'replaced behind our back')
    expect((await storage.head('t/d.mp3'))?.contentType).toBe('audio/mpeg')

    await storage.deletePrefix('t/')
    expect(existsSync(join(root, '.meta', 't'))).toBe(false)
  })

  it('builds URLs from baseUrl with each segment encoded', async () => {
    expect(await localStorage({ root }).url('a/b-1.mp3')).toBe('/files/a/b-1.mp3')
    expect(await localStorage({ root, baseUrl: 'https://cdn.example/media' }).url('x/y.wav')).toBe(
      'https://cdn.example/media/x/y.wav',
    )
  })

  it('resolves its options once and leaves the input alone', () => {
    const options = Object.freeze({ root: 'relative/files' })
    const storage = localStorage(options)
    expect(storage.root).toBe(join(process.cwd(), 'relative', 'files'))
    expect(storage.baseUrl).toBe('/files/')
    expect(options).toEqual({ root: 'relative/files' })
    expect(() => localStorage({ root: '' })).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION' }),
    )
  })

  it('moves a file from another filesystem with putFile (copy, then unlink)', async () => {
    const shm = '/dev/shm'
    if (!existsSync(shm) || statSync(shm).dev === statSync(tmpdir()).dev) return
    const source = await mkdtemp(join(shm, 'local-storage-'))
    try {
      const file = join(source, 'spool.bin')
      const data = randomBytes(100_000)
      await writeFile(file, data)
      const storage = localStorage({ root })
      expect((await storage.putFile('x/moved.bin', file)).size).toBe(data.length)
      expect(existsSync(file)).toBe(false)
      expect(await readFile(join(root, 'x', 'moved.bin'))).toEqual(data)
      expect(await readdir(join(root, '.tmp'))).toEqual([])
    } finally {
      await rm(source, { recursive: true, force: true })
    }
  })

  it('does not read a folder as an object', async () => {
    const storage = localStorage({ root })
    await storage.put('dir/inner.bin', Readable.from([Buffer.from('x')]))
    expect(await storage.head('dir')).toBeNull()
    await expect(storage.get('dir')).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await storage.delete('dir')
    expect((await storage.head('dir/inner.bin'))?.size).toBe(1)
    await expect(storage.put('dir', Readable.from([Buffer.from('y')]))).rejects.toMatchObject({
      code: 'INVALID_KEY',
      message: expect.stringContaining('collides with a folder'),
    })
    expect(await readdir(join(root, '.tmp'))).toEqual([])
  })
})
