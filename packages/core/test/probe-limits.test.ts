import { execFile } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { ffmpegEngine } from '../src/engine/ffmpeg-engine.ts'
import { ffmpegPath } from '../src/media/ffmpeg-binaries.ts'
import { probeMedia } from '../src/media/ffprobe.ts'
import { memoryRepository } from '../src/repository/memory-repository.ts'
import { createTranscoder } from '../src/service/transcode-service.ts'
import { localStorage } from '../src/storage/local-storage.ts'
import { makeHugeFramesVideo } from '../src/testing/bomb-fixtures.ts'
import { meterChildren } from './process-meter.ts'

// The meter reads this process's own children: ffmpeg and ffprobe are spawned from it here,
// not through the process launcher (ffmpeg-engine.test.ts runs the guards through it).
beforeAll(() => {
  vi.stubEnv('TRANSCODEKIT_SPAWN', 'direct')
})
afterAll(() => {
  vi.unstubAllEnvs()
})

const MiB = 1024 ** 2
let dir: string
let huge: string
let growing: string
let lying: string

/**
 * An MKV of an hour of silence (8 kHz mono FLAC, about 25 KB) whose Segment Duration element
 * says 10 s: ffprobe believes the container.
 */
async function makeLyingDurationAudio(path: string): Promise<string> {
  const honest = join(dir, 'honest.mkv')
  await promisify(execFile)(ffmpegPath(), [
    ...['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'anullsrc=r=8000:cl=mono'],
    ...['-t', '3600', '-c:a', 'flac', '-frame_size', '65535', honest],
  ])
  const bytes = await readFile(honest)
  // Duration (ID 0x4489), 8 bytes: a double in milliseconds (the default timestamp scale).
  const at = bytes.indexOf(Buffer.from([0x44, 0x89, 0x88]))
  expect(bytes.readDoubleBE(at + 3)).toBe(3_600_000)
  bytes.writeDoubleBE(10_000, at + 3)
  await writeFile(path, bytes)
  return path
}

/**
 * A MOV of PNG frames whose first frame is 16×16 and the next three 12000×12000 (gray): the
 * probe sees the first, ffmpeg would decode the others at 144 MB each.
 */
async function makeGrowingFramesVideo(path: string): Promise<string> {
  const run = (args: string[]) =>
    promisify(execFile)(ffmpegPath(), ['-v', 'error', '-nostdin', '-y', ...args])
  const frame = (size: number, file: string) =>
    run([
      '-f',
      'lavfi',
      '-i',
      `color=c=black:s=${size}x${size},format=gray`,
      '-frames:v',
      '1',
      file,
    ])
  await frame(16, join(dir, 'frame-1.png'))
  await frame(12_000, join(dir, 'frame-2.png'))
  for (const n of [3, 4]) await copyFile(join(dir, 'frame-2.png'), join(dir, `frame-${n}.png`))
  await run(['-framerate', '1', '-i', join(dir, 'frame-%d.png'), '-c:v', 'copy', '-f', 'mov', path])
  return path
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-probe-limits-'))
  // One 16000×16000 gray PNG frame: about 40 KB of file, 256 MB once decoded.
  huge = await makeHugeFramesVideo(join(dir, 'huge.mov'), { frames: 1 })
  growing = await makeGrowingFramesVideo(join(dir, 'growing.mov'))
  lying = await makeLyingDurationAudio(join(dir, 'lying.mkv'))
}, 120_000)

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('the probe of an upload', () => {
  it('does not decode a frame over maxFramePixels, and still reports its size', async () => {
    const meter = meterChildren(20)
    const media = await probeMedia(huge, { maxFramePixels: 4096 * 4096 })
    const peaks = await meter.stop()
    expect(media.streams).toMatchObject([{ type: 'video', width: 16_000, height: 16_000 }])
    // ffprobe itself is about 55 MB here; decoding the frame takes 256 MB more (and seconds,
    // so the meter sees it; without decoding, ffprobe may end before the meter's first look).
    expect(peaks.rssBytes).toBeLessThan(150 * MiB)
  })

  it('of the service uses the job limit, so the frame is refused without being decoded', async () => {
    const service = createTranscoder({
      storage: localStorage({ root: join(dir, 'files') }),
      engine: ffmpegEngine({ tmpDir: join(dir, 'ffmpeg') }),
      repository: memoryRepository(),
      tmpDir: join(dir, 'uploads'),
      worker: false,
    })
    try {
      const meter = meterChildren(20)
      const asset = await service.ingest(createReadStream(huge))
      const peaks = await meter.stop()
      expect(peaks.rssBytes).toBeLessThan(150 * MiB)
      await expect(service.transcode(asset.id)).rejects.toMatchObject({ code: 'FRAME_TOO_LARGE' })
    } finally {
      await service.close()
    }
  })

  it('bounds the frames the probe did not see: ffmpeg decodes none over maxFramePixels', async () => {
    const service = createTranscoder({
      storage: localStorage({ root: join(dir, 'files-growing') }),
      engine: ffmpegEngine({ tmpDir: join(dir, 'ffmpeg-growing') }),
      repository: memoryRepository(),
      tmpDir: join(dir, 'uploads-growing'),
      worker: false,
      limits: { maxFramePixels: 1920 * 1080 },
    })
    try {
      const asset = await service.ingest(createReadStream(growing))
      expect(asset.media.streams).toMatchObject([{ type: 'video', width: 16, height: 16 }])
      const job = await service.transcode(asset.id, { presets: ['mp4-480p'] })
      const meter = meterChildren(20)
      await service.runJob(job.id)
      const peaks = await meter.stop()
      // One decoded 12000×12000 frame alone is 144 MB (ffmpeg, refusing the first large frame,
      // may also end before the meter sees it).
      expect(peaks.rssBytes).toBeLessThan(140 * MiB)
      const ended = await service.getJob(job.id)
      expect(ended.state).toBe('error')
      expect(ended.errorMessage).toContain('max pixel count')
    } finally {
      await service.close()
    }
  })

  it('reads no more of an input than maxDurationSec, whatever its container declares', async () => {
    const service = createTranscoder({
      storage: localStorage({ root: join(dir, 'files-lying') }),
      // The output cap stops ffmpeg at 100 MB where nothing else would (an hour of WAV is 635 MB).
      engine: ffmpegEngine({ tmpDir: join(dir, 'ffmpeg-lying'), maxOutputBytes: 100 * MiB }),
      repository: memoryRepository(),
      tmpDir: join(dir, 'uploads-lying'),
      worker: false,
      limits: { maxDurationSec: 60 },
    })
    try {
      const asset = await service.ingest(createReadStream(lying))
      expect(asset.media.durationSec).toBe(10)
      const job = await service.transcode(asset.id, { presets: ['wav'] })
      await service.runJob(job.id)
      const ended = await service.getJob(job.id)
      expect(ended.state).toBe('complete')
      const [wav] = ended.outputs
      // 60 s of 44.1 kHz stereo 16-bit is 10.6 MB.
      expect(wav!.durationSec).toBeLessThanOrEqual(61)
      expect(wav!.size).toBeLessThan(11 * MiB)
    } finally {
      await service.close()
    }
  })

  it("stops writing at the job's maxOutputBytes, not only at the engine's own cap", async () => {
    const service = createTranscoder({
      storage: localStorage({ root: join(dir, 'files-bytes') }),
      engine: ffmpegEngine({ tmpDir: join(dir, 'ffmpeg-bytes'), maxOutputBytes: 100 * MiB }),
      repository: memoryRepository(),
      tmpDir: join(dir, 'uploads-bytes'),
      worker: false,
      // The 10 s it declares make 1.9 MB of WAV; the hour it holds, 635 MB.
      limits: { maxOutputBytes: 20 * MiB },
    })
    try {
      const asset = await service.ingest(createReadStream(lying))
      const job = await service.transcode(asset.id, { presets: ['wav'] })
      await service.runJob(job.id)
      const ended = await service.getJob(job.id)
      expect(ended).toMatchObject({ state: 'error', errorCode: 'OUTPUT_TOO_LARGE' })
      expect(ended.errorMessage).toContain(`limit of ${20 * MiB} bytes`)
    } finally {
      await service.close()
    }
  })
})
