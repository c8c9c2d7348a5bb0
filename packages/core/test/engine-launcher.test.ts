import { randomUUID } from 'node:crypto'
import { createReadStream, readFileSync } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  directSpawner,
  EngineError,
  type EngineJobRequest,
  ffmpegEngine,
  type MediaInfo,
  ProcessLauncher,
  probeMedia,
  type Spawner,
} from '../src/index.ts'
import { outputKey } from '../src/keys.ts'
import { createPresetCatalog } from '../src/presets/preset-catalog.ts'
import { localStorage } from '../src/storage/local-storage.ts'
import { makeTone } from '../src/testing/media-fixtures.ts'
import { ffmpegRlimits } from './support/proc-limits.ts'

// The engine spawns through the shared launcher by default (ffmpeg-engine.test.ts runs all its
// guards that way); these cover spawning directly, and the launcher dying under a running job.
const catalog = createPresetCatalog()
let dir: string
let tone: { path: string; media: MediaInfo }

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-engine-launcher-'))
  const path = await makeTone(join(dir, 'tone.wav'), { seconds: 20, format: 'wav' })
  tone = { path, media: await probeMedia(path, { spawner: directSpawner }) }
}, 120_000)
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function job(name: string): Promise<EngineJobRequest> {
  const storage = localStorage({ root: join(dir, name, 'files') })
  const [assetId, jobId] = [randomUUID(), randomUUID()]
  const key = `media/${assetId}/original.wav`
  await storage.put(key, createReadStream(tone.path))
  const preset = catalog.resolve('flac')
  return {
    jobId,
    input: { key, media: tone.media },
    storage,
    outputs: [
      {
        name: preset.id,
        key: outputKey('media', assetId, jobId, preset.id, preset.extension),
        preset,
      },
    ],
  }
}

function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3))
  } catch {
    return false
  }
}

describe('ffmpeg engine and the process launcher', () => {
  it('probes and runs a job with ffmpeg and ffprobe spawned directly', async () => {
    const media = await probeMedia(tone.path, { spawner: directSpawner })
    expect(media.formatName).toBe('wav')
    const engine = ffmpegEngine({ tmpDir: join(dir, 'direct', 'tmp'), spawner: directSpawner })
    const status = await engine.run(await job('direct'), {
      signal: new AbortController().signal,
      onStatus: () => {},
    })
    expect(status.state).toBe('complete')
    expect(status.outputs[0]?.durationSec).toBeCloseTo(20, 0)
  })

  it('runs ffprobe under rlimits too: CPU seconds, address space, no core dumps', async () => {
    let limits: string | null = null
    const spawner: Spawner = (command, args) => {
      const child = directSpawner(command, args)
      child.once('spawn', () => {
        const pid = child.pid as number
        // As for ffmpeg below: read them once prlimit has exec'd ffprobe in place.
        const look = () => {
          let comm: string
          try {
            comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
          } catch {
            return // gone before it was seen as ffprobe: `limits` stays null
          }
          if (comm !== 'ffprobe') return void setTimeout(look, 1)
          limits = readFileSync(`/proc/${pid}/limits`, 'utf8')
        }
        look()
      })
      return child
    }
    const media = await probeMedia(tone.path, {
      spawner,
      maxCpuSec: 20,
      maxMemoryBytes: 1024 ** 3,
    })
    expect(media.durationSec).toBeGreaterThan(0)
    expect(limits).not.toBeNull()
    expect(ffmpegRlimits(limits as unknown as string)).toMatchObject({
      cpuTime: ['20', '22'],
      addressSpace: [String(1024 ** 3), String(1024 ** 3)],
      coreFileSize: ['0', '0'],
    })
  })

  it('runs ffmpeg through the launcher under its rlimits and as a child of the launcher', async () => {
    const launcher = new ProcessLauncher()
    let seen: { limits: string; ppid: number } | null = null
    const spawner: Spawner = (command, args) => {
      const child = launcher.spawn(command, args)
      child.once('spawn', () => {
        const pid = child.pid as number
        // prlimit (and setpriv) set the limits, then exec ffmpeg in place: read them once the
        // process is ffmpeg (at 'spawn' it may still be prlimit, before its setrlimit). ffmpeg's
        // own start (its shared libraries) leaves a window of tens of milliseconds at least.
        const look = () => {
          let comm: string
          try {
            comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
          } catch {
            return // gone before it was seen as ffmpeg: `seen` stays null and the test says so
          }
          if (comm !== 'ffmpeg') return void setTimeout(look, 1)
          const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
          seen = {
            limits: readFileSync(`/proc/${pid}/limits`, 'utf8'),
            ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]),
          }
        }
        look()
      })
      return child
    }
    const engine = ffmpegEngine({
      tmpDir: join(dir, 'limits', 'tmp'),
      spawner,
      maxCpuSec: 30,
      maxMemoryBytes: 2 * 1024 ** 3,
      maxOutputBytes: 64 * 1024 ** 2,
    })
    const status = await engine.run(await job('limits'), {
      signal: new AbortController().signal,
      onStatus: () => {},
    })
    expect(status.state).toBe('complete')
    expect(seen).not.toBeNull()
    const { limits, ppid } = seen as unknown as { limits: string; ppid: number }
    expect(ppid).toBe(launcher.pid)
    // prlimit (and setpriv) exec ffmpeg in place: the pid the launcher reports is ffmpeg's.
    expect(ffmpegRlimits(limits)).toEqual({
      cpuTime: ['31', '33'],
      addressSpace: [String(2 * 1024 ** 3), String(2 * 1024 ** 3)],
      fileSize: [String(64 * 1024 ** 2), String(64 * 1024 ** 2)],
      coreFileSize: ['0', '0'],
    })
    launcher.close()
  })

  it('fails a running job with ENGINE_UNAVAILABLE when the launcher dies, and ffmpeg dies too', async () => {
    const launcher = new ProcessLauncher()
    let ffmpegPid: number | undefined
    // Kills the launcher as soon as ffmpeg runs.
    const spawner: Spawner = (command, args) => {
      const child = launcher.spawn(command, args)
      child.once('spawn', () => {
        ffmpegPid = child.pid
        process.kill(launcher.pid as number, 'SIGKILL')
      })
      return child
    }
    const tmp = join(dir, 'died', 'tmp')
    const engine = ffmpegEngine({ tmpDir: tmp, spawner })
    const outcome = await engine
      .run(await job('died'), { signal: new AbortController().signal, onStatus: () => {} })
      .then(
        (status) => ({ status }),
        (error: unknown) => ({ error }),
      )
    expect(outcome).toHaveProperty('error')
    const error = (outcome as { error: unknown }).error
    expect(error).toBeInstanceOf(EngineError)
    expect(error).toMatchObject({ code: 'ENGINE_UNAVAILABLE' })
    expect((error as Error).message).toMatch(/launcher died/)
    expect(ffmpegPid).toBeDefined()
    await expect.poll(() => running(ffmpegPid as number)).toBe(false)
    // The job's work folder is gone, as after any failure.
    expect(await readdir(tmp)).toEqual([])
    launcher.close()
  })
})
