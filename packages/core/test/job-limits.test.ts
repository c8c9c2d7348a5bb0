import { randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { type FfmpegEngineOptions, ffmpegEngine } from '../src/engine/ffmpeg-engine.ts'
import { MediaLimitError } from '../src/errors.ts'
import { bundledBinaries } from '../src/media/ffmpeg-binaries.ts'
import { probeMedia } from '../src/media/ffprobe.ts'
import type { Repository } from '../src/ports/repository.ts'
import { createPresetCatalog, type PresetCatalog } from '../src/presets/preset-catalog.ts'
import { memoryRepository } from '../src/repository/memory-repository.ts'
import { estimateOutputBytes, type JobLimits } from '../src/service/job-limits.ts'
import { createTranscoder, type TranscodeService } from '../src/service/transcode-service.ts'
import { localStorage } from '../src/storage/local-storage.ts'
import {
  makeHugeFramesVideo,
  makeLongSilence,
  makeTimestampGapVideo,
} from '../src/testing/bomb-fixtures.ts'
import { makeTone, makeVideo } from '../src/testing/media-fixtures.ts'
import { filesUnder } from '../src/testing/test-helpers.ts'
import { children, meterChildren } from './process-meter.ts'
import { ffmpegRlimits } from './support/proc-limits.ts'

// The meter reads this process's own children: ffmpeg and ffprobe are spawned from it here,
// not through the process launcher (ffmpeg-engine.test.ts runs the guards through it).
beforeAll(() => {
  vi.stubEnv('TRANSCODEKIT_SPAWN', 'direct')
})
afterAll(() => {
  vi.unstubAllEnvs()
})

const MiB = 1024 ** 2
const NO_LIMITS: JobLimits = {
  maxDurationSec: Number.POSITIVE_INFINITY,
  maxFramePixels: Number.POSITIVE_INFINITY,
  maxFrameRate: Number.POSITIVE_INFINITY,
  maxOutputBytes: Number.POSITIVE_INFINITY,
}

let base: string
const media = { gap: '', huge: '', silence: '', tone: '', fast: '' }

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'tk-job-limits-'))
  const dir = join(base, 'fixtures')
  await mkdir(dir)
  media.gap = await makeTimestampGapVideo(join(dir, 'gap.mkv'))
  media.silence = await makeLongSilence(join(dir, 'silence.flac'))
  media.tone = await makeTone(join(dir, 'tone.mp3'), { seconds: 10, format: 'mp3' })
  media.fast = await makeVideo(join(dir, 'fast.mp4'), {
    seconds: 1,
    width: 160,
    height: 120,
    frameRate: 120,
  })
  // The heavy one last: it takes about 1.6 GB and 15 s to make.
  media.huge = await makeHugeFramesVideo(join(dir, 'huge.mov'))
}, 180_000)

afterAll(async () => {
  await rm(base, { recursive: true, force: true })
})

interface Setup {
  service: TranscodeService
  repository: Repository
  root: string
  tmp: string
  close(): Promise<void>
}

async function setup(
  limits: JobLimits = {},
  engine: FfmpegEngineOptions = {},
  shared?: { repository: Repository; root: string },
  presets?: PresetCatalog,
): Promise<Setup> {
  const dir = await mkdtemp(join(base, 'case-'))
  const root = shared?.root ?? join(dir, 'files')
  const tmp = join(dir, 'tmp')
  const repository = shared?.repository ?? memoryRepository()
  const service = createTranscoder({
    storage: localStorage({ root }),
    engine: ffmpegEngine({ tmpDir: join(tmp, 'ffmpeg'), killGraceMs: 1000, ...engine }),
    repository,
    tmpDir: join(tmp, 'uploads'),
    worker: false,
    limits,
    presets,
  })
  return { service, repository, root, tmp, close: () => service.close() }
}

function ingest(service: TranscodeService, path: string) {
  return service.ingest(createReadStream(path), { filename: 'upload' })
}

describe('limits decided from the probe, before a job exists', () => {
  it('refuses each media bomb with its own code under the default limits', async () => {
    const t = await setup()
    const cases = [
      [media.gap, 'MEDIA_TOO_LONG', 'maxDurationSec'],
      [media.silence, 'MEDIA_TOO_LONG', 'maxDurationSec'],
      [media.huge, 'FRAME_TOO_LARGE', 'maxFramePixels'],
    ] as const
    for (const [path, code, limit] of cases) {
      const asset = await ingest(t.service, path)
      const refused = t.service.transcode(asset.id)
      await expect(refused).rejects.toBeInstanceOf(MediaLimitError)
      await expect(refused).rejects.toMatchObject({ code, limit })
    }
    expect((await t.service.listJobs()).items).toEqual([])
    await t.close()
  })

  it('refuses a frame rate over the limit, and an estimated output over the limit', async () => {
    const t = await setup({ maxFrameRate: 60, maxOutputBytes: 1 * MiB })
    const fast = await ingest(t.service, media.fast)
    await expect(t.service.transcode(fast.id, { presets: ['thumbnail'] })).rejects.toMatchObject({
      code: 'FRAME_RATE_TOO_HIGH',
      max: 60,
      actual: 120,
    })
    // 10 s of WAV is 1.76 MB.
    const tone = await ingest(t.service, media.tone)
    await expect(t.service.transcode(tone.id, { presets: ['wav'] })).rejects.toMatchObject({
      code: 'OUTPUT_TOO_LARGE',
      limit: 'maxOutputBytes',
    })
    const job = await t.service.transcode(tone.id, { presets: ['mp3-128k'] })
    expect(job.state).toBe('submitted')
    await t.close()
  })

  it('the 10-hour FLAC is refused for its 6.35 GB of WAV when only its length is allowed', async () => {
    const t = await setup({ maxDurationSec: 11 * 3600 })
    const asset = await ingest(t.service, media.silence)
    const refused = t.service.transcode(asset.id, { presets: ['wav'] })
    await expect(refused).rejects.toMatchObject({ code: 'OUTPUT_TOO_LARGE' })
    const error = (await refused.catch((e: unknown) => e)) as MediaLimitError
    expect(error.actual).toBeGreaterThan(6.35e9)
    await t.close()
  })

  it('a worker under stricter limits ends a job made under looser ones, before ffmpeg runs', async () => {
    const loose = await setup(NO_LIMITS)
    const asset = await ingest(loose.service, media.silence)
    const job = await loose.service.transcode(asset.id, { presets: ['wav'] })
    const strict = await setup({}, {}, { repository: loose.repository, root: loose.root })
    const meter = meterChildren()
    await strict.service.runJob(job.id)
    expect((await meter.stop()).processes).toBe(0)
    const ended = await strict.service.getJob(job.id)
    expect(ended).toMatchObject({ state: 'error', errorCode: 'MEDIA_TOO_LONG' })
    await loose.close()
    await strict.close()
  })

  it('the output estimate is above what the seed job really writes', async () => {
    const t = await setup({}, {})
    const asset = await ingest(t.service, media.tone)
    const presets = ['1351620000001-300300', '1351620000001-300110', '1351620000001-100110']
    const job = await t.service.transcode(asset.id, { presets })
    await t.service.runJob(job.id)
    const ended = await t.service.getJob(job.id)
    expect(ended.state).toBe('complete')
    const catalog = createPresetCatalog()
    const probed = await probeMedia(media.tone)
    for (const output of ended.outputs) {
      const estimate = estimateOutputBytes(catalog.resolve(output.presetId), probed)
      expect(output.size).toBeGreaterThan(0)
      expect(estimate).toBeGreaterThanOrEqual(output.size ?? 0)
      // An upper bound, not a wild one.
      expect(estimate).toBeLessThan((output.size ?? 0) * 2)
    }
    await t.close()
  })
})

/*
 * With the up-front limits lifted, the engine's own guards must stop each bomb. CPU time,
 * resident memory and bytes written are measured on the ffmpeg process itself.
 */
const bundled = bundledBinaries()
const binaries = [
  { name: 'the system ffmpeg', ffmpegPath: undefined, ffprobePath: undefined },
  ...(bundled.ffmpeg && bundled.ffprobe
    ? [
        {
          name: 'the bundled 2018 ffmpeg',
          ffmpegPath: bundled.ffmpeg,
          ffprobePath: bundled.ffprobe,
        },
      ]
    : []),
]

describe.each(binaries)('guards while $name runs (up-front limits lifted)', (binary) => {
  async function runBomb(path: string, presets: string[], engine: FfmpegEngineOptions) {
    const t = await setup(NO_LIMITS, {
      ffmpegPath: binary.ffmpegPath,
      ffprobePath: binary.ffprobePath,
      ...engine,
    })
    const asset = await ingest(t.service, path)
    const job = await t.service.transcode(asset.id, { presets })
    const started = Date.now()
    const meter = meterChildren()
    await t.service.runJob(job.id)
    const peaks = await meter.stop()
    const wallMs = Date.now() - started
    // ffmpeg is gone (killed and reaped), not left running or a zombie.
    expect(await children()).toEqual([])
    const ended = await t.service.getJob(job.id)
    // Nothing left: no output stored, no work folder, no ffmpeg.
    expect(await filesUnder(t.root, { hiddenFolders: false })).toEqual([asset.storageKey])
    expect(await filesUnder(join(t.tmp, 'ffmpeg'))).toEqual([])
    await t.close()
    return { ended, peaks, wallMs }
  }

  it('the timestamp-gap MKV is killed when its progress stalls, SIGKILL after the SIGTERM it ignores', async () => {
    const { ended, peaks, wallMs } = await runBomb(media.gap, ['mp4-720p', 'thumbnail'], {
      stallTimeoutMs: 3000,
    })
    expect(ended).toMatchObject({ state: 'error', errorCode: 'STALLED' })
    // Filling the gap, ffmpeg ignores SIGTERM: it took the SIGKILL after the 1 s of grace.
    expect(ended.errorMessage).toMatch(/no progress for 3 s \(it ignored SIGTERM and was killed\)/)
    expect(ended.outputs.every((o) => o.state === 'error')).toBe(true)
    expect(peaks.processes).toBe(1)
    // 3 s without progress, 1 s of grace after SIGTERM, on at most 2 cores, with margins.
    expect(wallMs).toBeLessThan(12_000)
    expect(peaks.reapedCpuSec).toBeGreaterThanOrEqual(peaks.cpuSec)
    expect(peaks.reapedCpuSec).toBeLessThan(2 * (3 + 1) + 2)
  }, 60_000)

  it('ffmpeg runs under its rlimits: CPU seconds, address space, file size, no core dump', async () => {
    const t = await setup(NO_LIMITS, {
      ffmpegPath: binary.ffmpegPath,
      ffprobePath: binary.ffprobePath,
      stallTimeoutMs: 2000,
      maxCpuSec: 30,
      maxMemoryBytes: 1024 * MiB,
      maxOutputBytes: 50 * MiB,
    })
    const asset = await ingest(t.service, media.gap)
    const job = await t.service.transcode(asset.id, { presets: ['mp4-720p'] })
    const running = t.service.runJob(job.id)
    let limits = ''
    while (!limits) {
      for (const pid of await children()) {
        const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')
        if (comm.trim() === 'ffmpeg') limits = await readFile(`/proc/${pid}/limits`, 'utf8')
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await running
    // The kernel's own stop a second after the watcher's, then SIGKILL 2 s later.
    expect(ffmpegRlimits(limits)).toEqual({
      cpuTime: ['31', '33'],
      addressSpace: [String(1024 * MiB), String(1024 * MiB)],
      fileSize: [String(50 * MiB), String(50 * MiB)],
      coreFileSize: ['0', '0'],
    })
    expect((await t.service.getJob(job.id)).errorCode).toBe('STALLED')
    await t.close()
  }, 60_000)

  it('a still taken late in a video is no stall: ffmpeg reads its input meanwhile', async () => {
    // Decoding up to 90 % writes nothing and moves no progress line: only the input is read.
    const path = await makeVideo(join(base, `late-still-${randomUUID()}.mp4`), {
      seconds: 60,
      width: 320,
      height: 240,
      audio: false,
    })
    const presets = createPresetCatalog({
      presets: [
        {
          id: 'late-still',
          description: 'A still at 90 %',
          container: 'image',
          extension: 'jpg',
          contentType: 'image/jpeg',
          image: { format: 'jpg', source: 'frame', maxWidth: 160, maxHeight: 120, atFraction: 0.9 },
        },
      ],
    })
    const t = await setup(
      NO_LIMITS,
      {
        ffmpegPath: binary.ffmpegPath,
        ffprobePath: binary.ffprobePath,
        stallTimeoutMs: 300,
      },
      undefined,
      presets,
    )
    const asset = await ingest(t.service, path)
    const job = await t.service.transcode(asset.id, { presets: ['late-still'] })
    await t.service.runJob(job.id)
    const ended = await t.service.getJob(job.id)
    expect(ended.state, ended.errorMessage ?? '').toBe('complete')
    await t.close()
  }, 60_000)

  it('the timestamp-gap MKV is stopped at its CPU time limit when the stall guard is off', async () => {
    const { ended, peaks } = await runBomb(media.gap, ['mp4-720p'], {
      stallTimeoutMs: Number.POSITIVE_INFINITY,
      maxCpuSec: 3,
    })
    expect(ended).toMatchObject({ state: 'error', errorCode: 'CPU_LIMIT' })
    expect(peaks.reapedCpuSec).toBeGreaterThanOrEqual(3)
    // The kernel's hard limit is 3 + 1 + 2 s; the watcher stops it before.
    expect(peaks.reapedCpuSec).toBeLessThan(6.5)
  }, 60_000)

  it('the 16000×16000 PNG MOV is stopped by its address-space limit', async () => {
    const { ended, peaks } = await runBomb(media.huge, ['mp4-720p', 'thumbnail'], {
      maxMemoryBytes: 512 * MiB,
    })
    expect(ended).toMatchObject({ state: 'error', errorCode: 'MEMORY_LIMIT' })
    expect(peaks.rssBytes).toBeGreaterThan(0)
    expect(peaks.rssBytes).toBeLessThanOrEqual(512 * MiB)
  }, 60_000)

  it('the 10-hour FLAC stops writing WAV at the output cap', async () => {
    const { ended, peaks } = await runBomb(media.silence, ['wav'], {
      maxOutputBytes: 20 * MiB,
    })
    expect(ended).toMatchObject({ state: 'error', errorCode: 'OUTPUT_TOO_LARGE' })
    // Every write() of ffmpeg counted (the progress pipe included), and this process's own.
    expect(peaks.reapedWrittenBytes).toBeGreaterThan(10 * MiB)
    expect(peaks.reapedWrittenBytes).toBeLessThanOrEqual(20 * MiB + 1 * MiB)
  }, 60_000)
})
