import { createReadStream } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import {
  AbortedError,
  ConfigurationError,
  EngineError,
  type JobErrorCode,
  TranscodeKitError,
} from '../errors.ts'
import { assertValidKey, hlsSegmentPattern } from '../keys.ts'
import { processTag, watchLeftovers } from '../leftovers/leftover-sweeper.ts'
import { consoleLogger } from '../logging/console-logger.ts'
import { errorText } from '../logging/error-text.ts'
import {
  type BinaryChoice,
  type BinaryVersion,
  binaryVersion,
  ffmpegBinary,
  ffprobeBinary,
} from '../media/ffmpeg-binaries.ts'
import { type Prober, probeMedia } from '../media/ffprobe.ts'
import type {
  Engine,
  EngineJobRequest,
  EngineOutputStatus,
  EngineRunOptions,
  EngineStatus,
} from '../ports/engine.ts'
import type { Logger } from '../ports/logger.ts'
import type { Storage } from '../ports/storage.ts'
import { dieWithParent, rlimit } from '../process/limited-command.ts'
import { defaultSpawner } from '../process/process-launcher.ts'
import type { SpawnedProcess, Spawner } from '../process/spawner.ts'
import { localFileOf } from '../storage/local-file.ts'
import {
  demuxerName,
  type FfmpegOutputPlan,
  ffmpegCommandArgs,
  ffmpegInputArgs,
  ffmpegOutputArgs,
} from './ffmpeg-args.ts'

export interface FfmpegEngineOptions {
  /**
   * Wall-clock limit of one job, from the start of `run` to its outputs being stored. A job
   * that runs over ends in `error` with code `TIMEOUT`.
   * @default 21_600_000 (6 hours)
   */
  timeoutMs?: number
  /** The ffmpeg binary. @default ffmpegPath(): `FFMPEG_PATH`, `PATH`, then the bundled one */
  ffmpegPath?: string
  /**
   * Where a job writes its input copy and outputs before they are stored; each job gets
   * its own folder inside, removed when the job ends however it ends.
   * @default `<os tmpdir>/transcodekit`
   */
  tmpDir?: string
  /** How long ffmpeg gets to exit after SIGTERM before SIGKILL. @default 2000 */
  killGraceMs?: number
  /** libx264 speed preset for H.264 outputs. @default 'veryfast' */
  x264Preset?: string
  /**
   * The ffprobe binary of the default `probe`.
   * @default ffprobePath(): `FFPROBE_PATH`, `PATH`, then the bundled one
   */
  ffprobePath?: string
  /** Reads the duration of finished outputs. @default probeMedia with `ffprobePath` */
  probe?: Prober
  /**
   * How ffmpeg is started. `directSpawner` spawns from this process; the default spawns
   * through a small launcher process, so that a large server does not pay for each spawn.
   * @default defaultSpawner(): the shared process launcher (`TRANSCODEKIT_SPAWN=direct`: directSpawner)
   */
  spawner?: Spawner
  /**
   * Kill ffmpeg when its progress (output time, frames and bytes written, and on Linux bytes
   * of input read) has not moved for this long: an input with a huge timestamp gap keeps it
   * busy with all of them stuck. The job ends in `error` with code `STALLED`. `Infinity` turns
   * the guard off.
   * @default 120_000 (2 minutes)
   */
  stallTimeoutMs?: number
  /**
   * CPU time ffmpeg may use, in seconds (all its threads together). Watched, and on Linux
   * also set as its `RLIMIT_CPU` (through util-linux's `prlimit`), so that the kernel stops it
   * even if this process cannot. The job ends in `error` with code `CPU_LIMIT`.
   * @default 21_600 (6 hours)
   */
  maxCpuSec?: number
  /**
   * Address space ffmpeg may map, in bytes: its `RLIMIT_AS` on Linux (through `prlimit`).
   * Allocations past it fail and the job ends in `error` with code `MEMORY_LIMIT`. This counts
   * reserved memory, not only resident: an H.264 720p job needs about 1 GiB on 2 cores, more
   * with more cores (threads). Not enforced where `prlimit` is missing.
   * @default 4_294_967_296 (4 GiB)
   */
  maxMemoryBytes?: number
  /**
   * Bytes the job's output files may take together while ffmpeg writes them. Watched, and on
   * Linux each file is also capped by `RLIMIT_FSIZE`. The job ends in `error` with code
   * `OUTPUT_TOO_LARGE`.
   * @default 8_589_934_592 (8 GiB)
   */
  maxOutputBytes?: number
  /**
   * Where the engine says, once per process and binary, which ffmpeg and ffprobe run and
   * their versions, with a warning for the bundled 2018 builds. A pino logger fits.
   * @default consoleLogger()
   */
  logger?: Logger
}

interface ResolvedOptions {
  timeoutMs: number
  ffmpegPath: string | null
  ffprobePath: string | null
  tmpDir: string
  killGraceMs: number
  x264Preset: string
  probe: Prober
  spawner: Spawner
  stallTimeoutMs: number
  maxCpuSec: number
  maxMemoryBytes: number
  maxOutputBytes: number
  logger: Logger
}

function resolveOptions(options: FfmpegEngineOptions): ResolvedOptions {
  const resolved: ResolvedOptions = {
    timeoutMs: options.timeoutMs ?? 6 * 60 * 60 * 1000,
    ffmpegPath: options.ffmpegPath ?? null,
    ffprobePath: options.ffprobePath ?? null,
    tmpDir: resolve(options.tmpDir ?? join(tmpdir(), 'transcodekit')),
    killGraceMs: options.killGraceMs ?? 2000,
    x264Preset: options.x264Preset ?? 'veryfast',
    probe:
      options.probe ??
      (options.ffprobePath
        ? (path, probeOptions) =>
            probeMedia(path, { ffprobePath: options.ffprobePath, ...probeOptions })
        : probeMedia),
    spawner: options.spawner ?? defaultSpawner(),
    stallTimeoutMs: options.stallTimeoutMs ?? 120_000,
    maxCpuSec: options.maxCpuSec ?? 6 * 60 * 60,
    maxMemoryBytes: options.maxMemoryBytes ?? 4 * 1024 ** 3,
    maxOutputBytes: options.maxOutputBytes ?? 8 * 1024 ** 3,
    logger: options.logger ?? consoleLogger(),
  }
  for (const name of ['stallTimeoutMs', 'maxCpuSec', 'maxMemoryBytes', 'maxOutputBytes'] as const) {
    const value = resolved[name]
    if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) {
      throw new ConfigurationError(`ffmpegEngine: option "${name}" must be a positive number`)
    }
  }
  if (!Number.isFinite(resolved.timeoutMs) || resolved.timeoutMs <= 0) {
    throw new ConfigurationError('ffmpegEngine: option "timeoutMs" must be a positive number')
  }
  if (!Number.isFinite(resolved.killGraceMs) || resolved.killGraceMs < 0) {
    throw new ConfigurationError('ffmpegEngine: option "killGraceMs" must be 0 or more')
  }
  if (resolved.ffmpegPath !== null && resolved.ffmpegPath.length === 0) {
    throw new ConfigurationError('ffmpegEngine: option "ffmpegPath" must be a non-empty path')
  }
  if (!/^[a-z]+$/.test(resolved.x264Preset)) {
    throw new ConfigurationError('ffmpegEngine: option "x264Preset" must be a libx264 preset name')
  }
  return resolved
}

/** One output of the job as laid out in the job's private folder. */
interface PlannedOutput {
  key: string
  /** Folder of the key in storage, with its trailing `/`. */
  keyDir: string
  /** The output's own folder in the temp dir: everything in it is published. */
  dir: string
  /** The file name of the main file (the key's last segment). */
  file: string
  container: string
  /** For an image output: what it shows (`frame`, `waveform`). */
  image: 'frame' | 'waveform' | null
  plan: FfmpegOutputPlan
}

interface ProcessResult {
  code: number | null
  signal: NodeJS.Signals | null
  stderr: string
  /** Set when a guard (stall, CPU, memory, output size) stopped ffmpeg. */
  guard: GuardStop | null
  /** The last signal this process sent, if it had to stop ffmpeg. */
  killedBy: NodeJS.Signals | null
}

interface GuardStop {
  code: 'STALLED' | 'CPU_LIMIT' | 'MEMORY_LIMIT' | 'OUTPUT_TOO_LARGE'
  message: string
}

// What ffmpeg (and the libraries and encoders in it) print when an allocation fails.
const OUT_OF_MEMORY =
  /Cannot allocate memory|malloc of size \d+ failed|failed to map segment|out of memory/i
// The 2018 builds say only that a frame buffer could not be had, as they do for corrupt AAC.
const NO_BUFFER = /get_buffer\(\) failed/

const STDERR_TAIL = 16 * 1024

// Messages ffmpeg prints when the input, not an encoder, is at fault.
const DECODE_PATTERNS = [
  /Error while decoding/i,
  /Invalid data found when processing input/i,
  /could not find codec parameters/i,
  /Header missing/i,
  /moov atom not found/i,
  /EBML header parsing failed/i,
  /Failed to read frame size/i,
  /Error opening input/i,
  /Output file is empty, nothing was encoded/i,
]

/**
 * The `engine` of the jobs this engine runs. Its HLS outputs name their segments
 * `hlsSegmentPattern`: a web layer that serves their playlists can sign exactly those.
 */
export const FFMPEG_ENGINE_NAME = 'ffmpeg'

/**
 * The local engine: one ffmpeg process per job decodes the input once and writes every
 * output. Outputs are written to a private folder and stored only once all of them are
 * complete, so no partial output is ever visible.
 *
 * How a job ends: `run` resolves `complete`, or `error` with `DECODE_FAILED` (the input does
 * not decode), `ENCODE_FAILED` (ffmpeg failed otherwise) or `TIMEOUT`; it rejects with
 * `AbortedError` when `signal` aborts, and with a `TranscodeKitError` when the job cannot
 * start or finish for reasons outside ffmpeg (`UNSUPPORTED_MEDIA`, `NOT_FOUND`,
 * `ENGINE_UNAVAILABLE`, `STORAGE_FAILED`). The service records both kinds as the job's error.
 * A guard ends it in `error` with `STALLED`, `CPU_LIMIT`, `MEMORY_LIMIT` or `OUTPUT_TOO_LARGE`.
 * An image output (a thumbnail) that cannot be made while the other outputs are fails alone:
 * the job is `complete`, that output `error` with code `NO_FRAME`, and nothing of it stored.
 */
export class FfmpegEngine implements Engine {
  readonly name = FFMPEG_ENGINE_NAME
  readonly #options: ResolvedOptions

  #binaries: Promise<{ ffmpeg: BinaryVersion; ffprobe: BinaryVersion }> | null = null

  constructor(options: FfmpegEngineOptions = {}) {
    this.#options = resolveOptions(options)
    // Work folders of jobs whose process died (a kill -9 leaves them): at start, then now and then.
    void watchLeftovers(this.#options.tmpDir, { logger: this.#options.logger })
    void this.binaries().then(
      (found) => announce(found, this.#options.logger),
      (error: unknown) =>
        this.#options.logger.error(
          { error: errorText(error) },
          'ffmpeg engine: no working ffmpeg or ffprobe; jobs will fail with ENGINE_UNAVAILABLE',
        ),
    )
  }

  /** Which ffmpeg and ffprobe this engine runs, with their versions (`-version`, first line). */
  binaries(): Promise<{ ffmpeg: BinaryVersion; ffprobe: BinaryVersion }> {
    this.#binaries ??= (async () => {
      const ffmpeg: BinaryChoice = this.#options.ffmpegPath
        ? { path: this.#options.ffmpegPath, source: 'option' }
        : ffmpegBinary()
      const ffprobe: BinaryChoice = this.#options.ffprobePath
        ? { path: this.#options.ffprobePath, source: 'option' }
        : ffprobeBinary()
      const [a, b] = await Promise.all([binaryVersion(ffmpeg), binaryVersion(ffprobe)])
      return { ffmpeg: a, ffprobe: b }
    })()
    return this.#binaries
  }

  async run(request: EngineJobRequest, options: EngineRunOptions): Promise<EngineStatus> {
    const { signal, onStatus } = options
    const engineJobId = request.jobId
    if (signal.aborted) throw new AbortedError('the job was canceled before it started')
    if (request.outputs.length === 0) {
      throw new EngineError('ENGINE_REJECTED', 'a job needs at least one output')
    }
    const binary = this.#binary()
    const limit = AbortSignal.timeout(this.#options.timeoutMs)
    const stop = AbortSignal.any([signal, limit])
    await mkdir(this.#options.tmpDir, { recursive: true, mode: 0o700 })
    const work = await mkdtemp(join(this.#options.tmpDir, `job-${processTag()}-`))
    try {
      // Refuse what cannot run before copying anything: the demuxer, the presets, the keys.
      demuxerName(request.input.media.formatName)
      const outputs = await this.#plan(request, work)
      const input = await this.#input(request, work, stop)
      const args = ffmpegCommandArgs(
        ffmpegInputArgs(
          input,
          request.input.media,
          request.input.maxFramePixels,
          request.input.maxDurationSec,
        ),
        outputs.map((output) => output.plan),
      )

      const result = await this.#spawn(binary, args, request, outputs, stop, onStatus)
      if (signal.aborted) throw new AbortedError('the job was canceled')
      if (limit.aborted) return this.#timeout(engineJobId, request)
      if (result.guard) {
        const how = result.killedBy === 'SIGKILL' ? ' (it ignored SIGTERM and was killed)' : ''
        return failed(engineJobId, request, result.guard.code, `${result.guard.message}${how}`)
      }
      const clean = (text: string) => scrub(text, work, input)
      if (result.code !== 0) {
        const decode =
          result.code === 69 ||
          mentionsInput(result.stderr, input) ||
          DECODE_PATTERNS.some((p) => p.test(result.stderr))
        return failed(
          engineJobId,
          request,
          decode ? 'DECODE_FAILED' : 'ENCODE_FAILED',
          decode
            ? `ffmpeg could not decode the input: ${clean(tail(result.stderr))}`
            : `ffmpeg failed (exit code ${result.code}): ${clean(tail(result.stderr))}`,
        )
      }
      const statuses: EngineOutputStatus[] = []
      const made: PlannedOutput[] = []
      for (const output of outputs) {
        const checked = await this.#check(output, stop)
        if ('error' in checked) {
          if (signal.aborted) throw new AbortedError('the job was canceled')
          // A still is a by-product: a video with no frame where it is taken (a single frame,
          // a short video track under a long sound track) fails that output alone.
          if (output.image && outputs.length > 1) {
            statuses.push({
              key: output.key,
              state: 'error',
              error: {
                code: 'NO_FRAME',
                message:
                  output.image === 'frame'
                    ? `no still for ${output.file}: the video has no frame where it is taken`
                    : checked.message,
              },
            })
            continue
          }
          const reason = result.stderr.trim() ? `: ${clean(tail(result.stderr))}` : ''
          return failed(engineJobId, request, checked.error, `${checked.message}${reason}`)
        }
        statuses.push(checked.status)
        made.push(output)
      }
      if (made.length === 0) {
        const first = statuses[0]?.error
        return failed(
          engineJobId,
          request,
          'DECODE_FAILED',
          first?.message ?? 'no output could be made',
        )
      }
      if (stop.aborted) {
        if (signal.aborted) throw new AbortedError('the job was canceled')
        return this.#timeout(engineJobId, request)
      }
      await this.#publish(request.storage, made, signal, limit)
      return { engineJobId, state: 'complete', progress: 100, outputs: statuses }
    } catch (error) {
      if (signal.aborted) {
        throw error instanceof AbortedError
          ? error
          : new AbortedError('the job was canceled', { cause: error })
      }
      if (limit.aborted) return this.#timeout(engineJobId, request)
      throw error
    } finally {
      await rm(work, { recursive: true, force: true })
    }
  }

  #binary(): string {
    try {
      return this.#options.ffmpegPath ?? ffmpegBinary().path
    } catch (error) {
      throw new EngineError('ENGINE_UNAVAILABLE', 'no ffmpeg binary was found', { cause: error })
    }
  }

  #timeout(engineJobId: string, request: EngineJobRequest): EngineStatus {
    return failed(
      engineJobId,
      request,
      'TIMEOUT',
      `the job ran longer than the limit of ${Math.round(this.#options.timeoutMs / 1000)} s`,
    )
  }

  /** The input as a local file: the storage's own file when it has one, else a copy. */
  #input(request: EngineJobRequest, work: string, signal: AbortSignal): Promise<string> {
    return localFileOf(request.storage, request.input.key, join(work, 'input'), signal)
  }

  async #plan(request: EngineJobRequest, work: string): Promise<PlannedOutput[]> {
    const planned: PlannedOutput[] = []
    for (const [index, output] of request.outputs.entries()) {
      // The key's last segment names a file in the temp dir: it must be a plain name.
      assertValidKey(output.key)
      const slash = output.key.lastIndexOf('/')
      const file = output.key.slice(slash + 1)
      const dir = join(work, `out-${index}`)
      await mkdir(dir)
      const plan = ffmpegOutputArgs(output.preset, {
        index,
        media: request.input.media,
        path: join(dir, file),
        segmentPattern: join(dir, hlsSegmentPattern(file)),
        x264Preset: this.#options.x264Preset,
      })
      planned.push({
        key: output.key,
        keyDir: output.key.slice(0, slash + 1),
        dir,
        file,
        container: output.preset.container,
        image: output.preset.image?.source ?? null,
        plan,
      })
    }
    return planned
  }

  #spawn(
    binary: string,
    args: string[],
    request: EngineJobRequest,
    outputs: PlannedOutput[],
    stop: AbortSignal,
    onStatus: EngineRunOptions['onStatus'],
  ): Promise<ProcessResult> {
    const duration = request.input.media.durationSec
    const limits = {
      ...this.#options,
      // The job's own limit where it is lower: its estimate trusted the probe.
      maxOutputBytes: Math.min(
        this.#options.maxOutputBytes,
        request.maxOutputBytes ?? Number.POSITIVE_INFINITY,
      ),
    }
    return new Promise((resolvePromise, reject) => {
      const child: SpawnedProcess = limits.spawner(...dieWithParent(binary, args, rlimits(limits)))
      let stderr = ''
      let pending = ''
      let outTimeUs = 0
      let reported = 0
      let listenerError: unknown = null
      let killTimer: NodeJS.Timeout | undefined
      let guard: GuardStop | null = null
      let killedBy: NodeJS.Signals | null = null
      let cpuSec = 0
      // Highest address space seen (VmPeak), or null where `/proc` cannot tell.
      let mappedBytes: number | null = null
      // What moved last: output time, frames, bytes. A progress block that moves none is a stall.
      let lastMark = ''
      let lastMove = Date.now()
      let lastRead = 0
      let progressBlock = { outTime: '', frame: '', size: '' }

      const exited = () => child.exitCode !== null || child.signalCode !== null
      const kill = () => {
        if (exited() || killedBy) return
        killedBy = 'SIGTERM'
        child.kill('SIGTERM')
        killTimer = setTimeout(() => {
          if (exited()) return
          // ffmpeg busy in a tight loop (a timestamp gap) ignores SIGTERM.
          killedBy = 'SIGKILL'
          child.kill('SIGKILL')
        }, limits.killGraceMs)
      }
      const stopFor = (reason: GuardStop) => {
        if (guard || stop.aborted || exited()) return
        guard = reason
        kill()
      }
      const onStop = () => kill()
      stop.addEventListener('abort', onStop, { once: true })
      const report = (progress: number) => {
        // Once stopped, what ffmpeg prints while it exits is not progress of the job.
        if (stop.aborted || guard) return
        try {
          onStatus({ engineJobId: request.jobId, state: 'progressing', progress })
        } catch (error) {
          listenerError = error
          kill()
        }
      }

      let checking = false
      const watch = setInterval(
        async () => {
          if (checking || exited() || guard) return
          checking = true
          try {
            // Reading its input is progress too: a still taken late in a long video, or a
            // waveform, writes nothing until the end. Filling a timestamp gap reads nothing.
            const read = child.pid ? await bytesRead(child.pid) : null
            if (read !== null && read > lastRead) {
              lastRead = read
              lastMove = Date.now()
            }
            if (Date.now() - lastMove > limits.stallTimeoutMs) {
              stopFor({
                code: 'STALLED',
                message: `ffmpeg made no progress for ${seconds(limits.stallTimeoutMs)} s`,
              })
              return
            }
            const cpu = child.pid ? await cpuSeconds(child.pid) : null
            if (cpu !== null) cpuSec = cpu
            const mapped = child.pid ? await peakMapped(child.pid) : null
            if (mapped !== null) mappedBytes = Math.max(mappedBytes ?? 0, mapped)
            if (cpuSec >= limits.maxCpuSec) {
              stopFor(cpuLimit(limits.maxCpuSec))
              return
            }
            const written = await outputBytes(outputs)
            if (written > limits.maxOutputBytes) stopFor(sizeLimit(limits.maxOutputBytes))
          } finally {
            checking = false
          }
        },
        Math.max(50, Math.min(500, limits.stallTimeoutMs / 4)),
      )

      child.once('spawn', () => {
        lastMove = Date.now()
        // Aborted while starting: the listener above may have run before there was a process.
        if (stop.aborted) kill()
        else report(0)
      })

      child.stdout?.setEncoding('utf8')
      child.stdout?.on('data', (chunk: string) => {
        pending += chunk
        const lines = pending.split('\n')
        pending = lines.pop() ?? ''
        for (const line of lines) {
          const [name, value = ''] = line.trim().split('=', 2)
          if (name === 'frame') progressBlock.frame = value
          if (name === 'total_size') progressBlock.size = value
          // `out_time_ms` is in microseconds too (an old ffmpeg misnomer); prefer `out_time_us`.
          if (name === 'out_time_us' || (name === 'out_time_ms' && outTimeUs === 0)) {
            progressBlock.outTime = value
            const parsed = Number(value)
            if (Number.isFinite(parsed) && parsed > outTimeUs) outTimeUs = parsed
          } else if (name === 'progress') {
            const mark = `${progressBlock.outTime}/${progressBlock.frame}/${progressBlock.size}`
            if (mark !== lastMark) {
              lastMark = mark
              lastMove = Date.now()
            }
            progressBlock = { outTime: '', frame: '', size: '' }
            if (duration && duration > 0 && listenerError === null) {
              // 100 is for `complete`: while running, stop just short of it.
              const progress = Math.min(99, Math.floor((outTimeUs / 1e6 / duration) * 1000) / 10)
              if (progress > reported) {
                reported = progress
                report(progress)
              }
            }
          }
        }
      })
      child.stderr?.setEncoding('utf8')
      child.stderr?.on('data', (chunk: string) => {
        stderr = (stderr + chunk).slice(-STDERR_TAIL)
      })
      const done = () => {
        stop.removeEventListener('abort', onStop)
        clearTimeout(killTimer)
        clearInterval(watch)
      }
      child.once('error', (error: NodeJS.ErrnoException) => {
        done()
        // The launcher that ran it died: its own EngineError says so.
        if (error instanceof EngineError) {
          reject(error)
          return
        }
        reject(
          new EngineError(
            'ENGINE_UNAVAILABLE',
            `ffmpeg could not be started (${error.code ?? error.message})`,
            { cause: error },
          ),
        )
      })
      child.once('close', (code, signal) => {
        done()
        if (listenerError !== null) {
          reject(listenerError)
          return
        }
        let stopped: GuardStop | null = guard
        // The kernel's limits, when this process did not see them coming.
        if (!stopped && signal === 'SIGXFSZ') stopped = sizeLimit(limits.maxOutputBytes)
        if (
          !stopped &&
          (signal === 'SIGXCPU' ||
            (signal === 'SIGKILL' && !killedBy) ||
            (code === 255 && !killedBy)) &&
          cpuSec >= limits.maxCpuSec - 2
        ) {
          stopped = cpuLimit(limits.maxCpuSec)
        }
        if (
          !stopped &&
          code !== 0 &&
          limits.maxMemoryBytes !== Infinity &&
          nearMemoryLimit(stderr, mappedBytes, limits.maxMemoryBytes)
        ) {
          stopped = {
            code: 'MEMORY_LIMIT',
            message: `ffmpeg needed more than its memory limit of ${limits.maxMemoryBytes} bytes`,
          }
        }
        resolvePromise({ code, signal, stderr, guard: stopped, killedBy })
      })
    })
  }

  /** Makes sure an output was written and reads its size and duration. */
  async #check(
    output: PlannedOutput,
    signal: AbortSignal,
  ): Promise<{ status: EngineOutputStatus } | { error: JobErrorCode; message: string }> {
    const files = await readdir(output.dir)
    let size = 0
    for (const file of files) size += (await stat(join(output.dir, file))).size
    const main = join(output.dir, output.file)
    const mainSize = files.includes(output.file) ? (await stat(main)).size : 0
    if (mainSize === 0) {
      return {
        error: 'DECODE_FAILED',
        message: `ffmpeg wrote nothing for ${output.file}: the input decoded to nothing`,
      }
    }
    let durationSec: number | null = null
    if (output.container === 'hls') {
      const playlist = await readFile(main, 'utf8')
      const segments = playlist.split('\n').filter((line) => line.trim() && !line.startsWith('#'))
      if (segments.length === 0 || segments.some((segment) => !files.includes(segment.trim()))) {
        return {
          error: 'ENCODE_FAILED',
          message: `the playlist ${output.file} names segments that were not written`,
        }
      }
      durationSec = sumExtinf(playlist)
    } else if (output.container !== 'image') {
      try {
        durationSec = (await this.#options.probe(main, { signal })).durationSec
      } catch (error) {
        if (signal.aborted) throw error
        return {
          error: 'ENCODE_FAILED',
          message: `the output ${output.file} is not readable media`,
        }
      }
    }
    return { status: { key: output.key, state: 'complete', size, durationSec } }
  }

  /**
   * Stores every file of every output, the main file of each last (an HLS playlist after
   * its segments). A failure or an abort removes what was stored already.
   */
  async #publish(
    storage: Storage,
    outputs: PlannedOutput[],
    signal: AbortSignal,
    limit: AbortSignal,
  ): Promise<void> {
    const stop = AbortSignal.any([signal, limit])
    const stored: string[] = []
    try {
      for (const output of outputs) {
        const files = (await readdir(output.dir)).filter((file) => file !== output.file).sort()
        for (const file of [...files, output.file]) {
          stop.throwIfAborted()
          const key = `${output.keyDir}${file}`
          const path = join(output.dir, file)
          stored.push(key)
          if (storage.putFile) await storage.putFile(key, path, { signal: stop })
          else await storage.put(key, createReadStream(path), { signal: stop })
        }
      }
      stop.throwIfAborted()
    } catch (error) {
      await Promise.all(
        stored.map((key) =>
          storage.delete(key).catch((cleanup: unknown) => {
            this.#options.logger.error(
              { key, error: errorText(cleanup) },
              'transcodekit: could not remove an output stored before its job failed',
            )
          }),
        ),
      )
      if (stop.aborted) throw error
      if (error instanceof TranscodeKitError && error.code === 'INVALID_KEY') throw error
      throw new EngineError('STORAGE_FAILED', `storing the outputs failed: ${errorText(error)}`, {
        cause: error,
      })
    }
  }
}

/** Makes the local ffmpeg engine. */
export function ffmpegEngine(options: FfmpegEngineOptions = {}): FfmpegEngine {
  return new FfmpegEngine(options)
}

const announced = new Set<string>()

/** Logs once per process and pair of binaries which run, and warns about outdated ones. */
function announce(found: { ffmpeg: BinaryVersion; ffprobe: BinaryVersion }, logger: Logger): void {
  const key = `${found.ffmpeg.path}\0${found.ffprobe.path}`
  if (announced.has(key)) return
  announced.add(key)
  logger.info(
    {
      ffmpeg: {
        path: found.ffmpeg.path,
        source: found.ffmpeg.source,
        version: found.ffmpeg.version,
      },
      ffprobe: {
        path: found.ffprobe.path,
        source: found.ffprobe.source,
        version: found.ffprobe.version,
      },
    },
    'ffmpeg engine: binaries',
  )
  for (const binary of [found.ffmpeg, found.ffprobe]) {
    if (!binary.outdated) continue
    logger.warn(
      { path: binary.path, version: binary.version },
      `ffmpeg engine: ${binary.path} is an old build (2018) that decodes untrusted uploads; ` +
        'install a current ffmpeg (apt-get install ffmpeg) or set FFMPEG_PATH and FFPROBE_PATH',
    )
  }
}

function failed(
  engineJobId: string,
  request: EngineJobRequest,
  code: JobErrorCode,
  message: string,
): EngineStatus {
  return {
    engineJobId,
    state: 'error',
    error: { code, message },
    outputs: request.outputs.map((output) => ({ key: output.key, state: 'error' })),
  }
}

function mentionsInput(stderr: string, input: string): boolean {
  return stderr.includes(`file:${input}:`)
}

/** The last distinct lines of ffmpeg's log, short enough for a job's error message. */
function tail(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
  const distinct: string[] = []
  for (const line of lines.reverse()) {
    if (!distinct.includes(line)) distinct.unshift(line)
    if (distinct.length === 3) break
  }
  return distinct.join(' / ').slice(0, 500) || 'no message'
}

/** Server paths are not the client's business: name them by role instead. */
function scrub(text: string, work: string, input: string): string {
  return text
    .replaceAll(`file:${input}`, 'input')
    .replaceAll(input, 'input')
    .replaceAll(`${work}/`, '')
}

function sumExtinf(playlist: string): number | null {
  let total = 0
  let found = false
  for (const match of playlist.matchAll(/^#EXTINF:([0-9.]+)/gm)) {
    total += Number(match[1])
    found = true
  }
  return found ? Math.round(total * 1000) / 1000 : null
}

/** `prlimit` options for ffmpeg: CPU seconds, address space, file size, and no core dumps. */
function rlimits(options: ResolvedOptions): string[] {
  const limits = ['--core=0']
  if (Number.isFinite(options.maxCpuSec)) {
    // The watcher stops it at the limit; the kernel sends SIGXCPU a second later, then SIGKILL.
    const soft = Math.ceil(options.maxCpuSec) + 1
    const hard = soft + Math.max(2, Math.ceil(options.killGraceMs / 1000))
    limits.push(rlimit('cpu', 'Max cpu time', soft, hard))
  }
  if (Number.isFinite(options.maxMemoryBytes)) {
    const bytes = Math.floor(options.maxMemoryBytes)
    limits.push(rlimit('as', 'Max address space', bytes, bytes))
  }
  if (Number.isFinite(options.maxOutputBytes)) {
    const bytes = Math.floor(options.maxOutputBytes)
    limits.push(rlimit('fsize', 'Max file size', bytes, bytes))
  }
  return limits
}

const CLOCK_TICKS = 100

/** User plus system CPU time of a process, from `/proc` (Linux), or `null` elsewhere. */
async function cpuSeconds(pid: number): Promise<number | null> {
  if (process.platform !== 'linux') return null
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return null
  }
}

/**
 * Whether ffmpeg failed for its address-space limit: it says an allocation failed, and it was
 * seen near the limit (a corrupt input can make a decoder say the same far below it).
 */
function nearMemoryLimit(stderr: string, mapped: number | null, limit: number): boolean {
  const near = mapped !== null && mapped >= limit / 2
  if (OUT_OF_MEMORY.test(stderr)) return mapped === null || near
  return NO_BUFFER.test(stderr) && near
}

/** The peak address space of a process (`VmPeak`, Linux), in bytes, or `null`. */
async function peakMapped(pid: number): Promise<number | null> {
  if (process.platform !== 'linux') return null
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const match = /^VmPeak:\s+(\d+) kB$/m.exec(status)
    return match ? Number(match[1]) * 1024 : null
  } catch {
    return null
  }
}

/** Bytes a process has read (`rchar` of `/proc/<pid>/io`, Linux), or `null`. */
async function bytesRead(pid: number): Promise<number | null> {
  if (process.platform !== 'linux') return null
  try {
    const io = await readFile(`/proc/${pid}/io`, 'utf8')
    const match = /^rchar: (\d+)$/m.exec(io)
    return match ? Number(match[1]) : null
  } catch {
    return null
  }
}

/** What ffmpeg has written so far into the outputs' folders. */
async function outputBytes(outputs: PlannedOutput[]): Promise<number> {
  let total = 0
  for (const output of outputs) {
    for (const file of await readdir(output.dir).catch(() => [] as string[])) {
      total += (await stat(join(output.dir, file)).catch(() => null))?.size ?? 0
    }
  }
  return total
}

function cpuLimit(max: number): GuardStop {
  return { code: 'CPU_LIMIT', message: `ffmpeg used more than its limit of ${max} s of CPU time` }
}

function sizeLimit(max: number): GuardStop {
  return {
    code: 'OUTPUT_TOO_LARGE',
    message: `the outputs grew past the limit of ${max} bytes`,
  }
}

function seconds(ms: number): number {
  return Math.round(ms / 100) / 10
}
