import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, statfs, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { makeTone } from '@transcodekit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeApp, multipart, type TestApp } from './helpers.ts'

/*
 * A real full file system: a small tmpfs mounted for the test. Mounting needs root (or
 * CAP_SYS_ADMIN), which CI has; elsewhere the tests are skipped and say why.
 */
const run = promisify(execFile)
const probe = await mkdtemp(join(tmpdir(), 'transcodekit-mount-probe-'))
const mountError = await run('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe]).then(
  () => run('umount', [probe]).then(() => null),
  (error: Error) => error.message,
)
await rm(probe, { recursive: true, force: true })
if (mountError) console.warn(`disk-full tests skipped: cannot mount a tmpfs (${mountError})`)

async function mountSmallDisk(path: string, size: string): Promise<() => Promise<void>> {
  await mkdir(path, { recursive: true })
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path])
  return async () => {
    await run('umount', [path]).catch(() => run('umount', ['-l', path]))
  }
}

/** Fills the file system of `folder` until `leaveBytes` are free; returns the filler. */
async function fill(folder: string, leaveBytes: number): Promise<string> {
  const { bavail, bsize } = await statfs(folder)
  const filler = join(folder, 'filler')
  await writeFile(filler, Buffer.alloc(Math.max(0, bavail * bsize - leaveBytes)))
  return filler
}

let fixtures: string
let song: Buffer

beforeAll(async () => {
  fixtures = await mkdtemp(join(tmpdir(), 'transcodekit-disk-full-'))
  // ≈ 960 KB: more than the space left in either test.
  song = await readFile(await makeTone(join(fixtures, 'song.mp3'), { seconds: 40, format: 'mp3' }))
})
afterAll(async () => {
  await rm(fixtures, { recursive: true, force: true })
})

async function upload(port: number) {
  const body = multipart([
    { name: 'presets', value: 'wav' },
    { name: 'file', filename: 'song.mp3', contentType: 'audio/mpeg', data: song },
  ])
  const res = await fetch(`http://127.0.0.1:${port}/uploads`, {
    method: 'POST',
    headers: body.headers,
    body: body.payload,
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

describe.skipIf(mountError !== null)('disk full', () => {
  it('507 when the spool disk fills, nothing left, and the next upload succeeds once space is back', async () => {
    const disk = await mkdtemp(join(tmpdir(), 'transcodekit-full-disk-'))
    const unmount = await mountSmallDisk(disk, '2m')
    let t: TestApp | null = null
    try {
      // Storage and spool both on the small disk.
      t = await makeApp({ parentDir: disk, worker: false })
      await t.app.listen({ port: 0, host: '127.0.0.1' })
      const port = (t.app.server.address() as { port: number }).port
      const filler = await fill(disk, 200 * 1024)

      const full = await upload(port)
      expect(full.status).toBe(507)
      expect(full.body).toMatchObject({
        statusCode: 507,
        code: 'TRANSCODEKIT_INSUFFICIENT_STORAGE',
        message: expect.stringContaining('no space left'),
      })
      expect(await t.snapshot()).toEqual({ files: [], tmp: [], assets: [], jobs: [] })
      expect((await fetch(`http://127.0.0.1:${port}/assets`)).status).toBe(200)

      await rm(filler)
      const ok = await upload(port)
      expect(ok.status).toBe(201)
      expect((await t.snapshot()).assets).toHaveLength(1)
    } finally {
      await t?.app.close()
      await t?.service.close()
      await unmount()
      await rm(disk, { recursive: true, force: true })
    }
  })

  it('507 when the storage disk fills (the spool fit elsewhere), nothing left, then 201', async () => {
    const t = await makeApp({ worker: false })
    // The storage root on its own small disk: the spool is copied across, and the copy fails.
    const unmount = await mountSmallDisk(t.storageRoot, '2m')
    try {
      await t.app.listen({ port: 0, host: '127.0.0.1' })
      const port = (t.app.server.address() as { port: number }).port
      const filler = await fill(t.storageRoot, 200 * 1024)

      const full = await upload(port)
      expect(full.status).toBe(507)
      expect(full.body).toMatchObject({ code: 'TRANSCODEKIT_INSUFFICIENT_STORAGE' })
      const state = await t.snapshot()
      expect(state.files).toEqual(['filler'])
      expect(state).toMatchObject({ tmp: [], assets: [], jobs: [] })

      await rm(filler)
      const ok = await upload(port)
      expect(ok.status).toBe(201)
    } finally {
      await t.app.close()
      await t.service.close()
      await unmount()
      await rm(t.dir, { recursive: true, force: true })
    }
  })
})
