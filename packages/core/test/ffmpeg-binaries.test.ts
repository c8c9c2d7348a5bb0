import { execFile } from 'node:child_process'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ffmpegEngine } from '../src/engine/ffmpeg-engine.ts'
import { binaryVersion, ffmpegBinary, ffprobeBinary } from '../src/media/ffmpeg-binaries.ts'
import { probeMedia } from '../src/media/ffprobe.ts'
import type { Logger } from '../src/ports/logger.ts'
import { makeVideo } from '../src/testing/media-fixtures.ts'

const require = createRequire(join(import.meta.dirname, '../src/media/ffmpeg-binaries.ts'))
const linuxX64 = process.platform === 'linux' && process.arch === 'x64'

let dir: string
let transportStream: string
const saved = { ...process.env }

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-binaries-'))
  transportStream = await makeVideo(join(dir, 'clip.ts'), {
    seconds: 1,
    width: 320,
    height: 240,
    container: 'mpegts',
  })
}, 60_000)
afterEach(() => {
  process.env.PATH = saved.PATH
  for (const name of ['FFMPEG_PATH', 'FFPROBE_PATH'] as const) {
    if (saved[name] === undefined) delete process.env[name]
    else process.env[name] = saved[name]
  }
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** Runs a binary and tells how it ended: its exit code, or the signal that killed it. */
function exit(
  path: string,
  args: string[],
): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => {
    const child = execFile(path, args, () => {})
    child.once('close', (code, signal) => resolve({ code, signal }))
  })
}

function capture(): Logger & { lines: Array<[string, unknown, string | undefined]> } {
  const lines: Array<[string, unknown, string | undefined]> = []
  const at =
    (level: string) =>
    (fields: unknown, message?: string): void => {
      lines.push([level, fields, message])
    }
  return { lines, info: at('info'), warn: at('warn'), error: at('error') } as never
}

describe('which ffmpeg and ffprobe run', () => {
  it('FFPROBE_PATH and FFMPEG_PATH first, then PATH, then the bundled builds', async () => {
    const bin = join(dir, 'bin')
    await mkdir(bin, { recursive: true })
    for (const name of ['ffmpeg', 'ffprobe']) {
      await writeFile(join(bin, name), '#!/bin/sh\necho "fake version"\n')
      await chmod(join(bin, name), 0o755)
    }
    process.env.FFMPEG_PATH = '/usr/bin/ffmpeg'
    process.env.FFPROBE_PATH = '/usr/bin/ffprobe'
    process.env.PATH = bin
    expect(ffmpegBinary()).toEqual({ path: '/usr/bin/ffmpeg', source: 'env' })
    expect(ffprobeBinary()).toEqual({ path: '/usr/bin/ffprobe', source: 'env' })
    delete process.env.FFMPEG_PATH
    delete process.env.FFPROBE_PATH
    expect(ffmpegBinary()).toEqual({ path: join(bin, 'ffmpeg'), source: 'path' })
    expect(ffprobeBinary()).toEqual({ path: join(bin, 'ffprobe'), source: 'path' })
    process.env.PATH = join(dir, 'nothing-here')
    expect(ffmpegBinary()).toMatchObject({
      path: expect.stringContaining('@ffmpeg-installer'),
      source: 'bundled',
    })
    expect(ffprobeBinary()).toMatchObject({
      path: expect.stringContaining('@ffprobe-installer'),
      source: 'bundled',
    })
  })

  it.runIf(linuxX64)(
    "@ffprobe-installer/ffprobe's own ffprobe (5.2.0) crashes on MPEG-TS; the one core picks reads it",
    async () => {
      const theirs = (require('@ffprobe-installer/ffprobe') as { path: string }).path
      const args = ['-v', 'error', '-show_format', transportStream]
      expect(await exit(theirs, args)).toEqual({ code: null, signal: 'SIGSEGV' })

      process.env.PATH = join(dir, 'nothing-here')
      const ours = ffprobeBinary()
      expect(ours.path).not.toBe(theirs)
      expect(ours.path).toContain('linux-x64')
      expect(await exit(ours.path, args)).toEqual({ code: 0, signal: null })
      const media = await probeMedia(transportStream)
      expect(media.formatName).toBe('mpegts')
      expect(media.streams.map((s) => s.type).sort()).toEqual(['audio', 'video'])
    },
  )

  it('the engine logs once which binaries run with their versions, and warns about the bundled ones', async () => {
    process.env.PATH = join(dir, 'nothing-here')
    const logger = capture()
    const engine = ffmpegEngine({ logger })
    const found = await engine.binaries()
    expect(found.ffmpeg).toMatchObject({ source: 'bundled', outdated: true })
    expect(found.ffmpeg.version).toMatch(/^ffmpeg version .*2018/)
    expect(found.ffprobe.version).toMatch(/^ffprobe version /)
    await new Promise((resolve) => setTimeout(resolve, 100))
    const info = logger.lines.filter(([level]) => level === 'info')
    expect(info).toEqual([
      [
        'info',
        {
          ffmpeg: { path: found.ffmpeg.path, source: 'bundled', version: found.ffmpeg.version },
          ffprobe: { path: found.ffprobe.path, source: 'bundled', version: found.ffprobe.version },
        },
        'ffmpeg engine: binaries',
      ],
    ])
    const warnings = logger.lines.filter(([level]) => level === 'warn')
    expect(warnings.map(([, fields]) => (fields as { path: string }).path)).toEqual([
      found.ffmpeg.path,
      found.ffprobe.path,
    ])
    // A second engine on the same binaries says nothing more.
    const again = capture()
    await ffmpegEngine({ logger: again }).binaries()
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(again.lines).toEqual([])
  })

  it('a current system ffmpeg is logged without a warning', async () => {
    const logger = capture()
    const engine = ffmpegEngine({ logger, ffmpegPath: '/usr/bin/ffmpeg' })
    const found = await engine.binaries()
    expect(found.ffmpeg).toMatchObject({ source: 'option', outdated: false })
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(logger.lines.filter(([level]) => level === 'warn')).toEqual([])
  })

  it('knows the bundled 2018 builds by their version line wherever they were found from', async () => {
    process.env.PATH = join(dir, 'nothing-here')
    for (const bundled of [ffmpegBinary(), ffprobeBinary()]) {
      // The same files named through FFMPEG_PATH/FFPROBE_PATH are no less outdated.
      expect(await binaryVersion({ path: bundled.path, source: 'env' })).toMatchObject({
        outdated: true,
      })
    }
    expect(await binaryVersion({ path: '/usr/bin/ffprobe', source: 'path' })).toMatchObject({
      outdated: false,
    })
  })
})
