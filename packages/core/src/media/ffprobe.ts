import { EngineError, UnsupportedMediaError } from '../errors.ts'
import type { MediaInfo, MediaStream } from '../model.ts'
import { dieWithParent, rlimit } from '../process/limited-command.ts'
import { defaultSpawner } from '../process/process-launcher.ts'
import { runProcess } from '../process/run-process.ts'
import type { Spawner } from '../process/spawner.ts'
import { ffprobePath } from './ffmpeg-binaries.ts'
import { ALLOWED_INPUT_FORMATS } from './sniff.ts'

export interface ProbeOptions {
  signal?: AbortSignal
  /** @default 30_000 */
  timeoutMs?: number
  /** Demuxers allowed; anything else is refused. @default ALLOWED_INPUT_FORMATS */
  formats?: readonly string[]
  /** The ffprobe binary. @default ffprobePath(): `FFPROBE_PATH`, `PATH`, then the bundled one */
  ffprobePath?: string
  /**
   * Frames of more pixels than this are not decoded by the probe (ffprobe decodes a frame of
   * each stream to learn its format, and a few KB of PNG can be a 1 GB frame); their size is
   * still reported, for the job limits to refuse. @default Infinity (ffprobe's own bound)
   */
  maxFramePixels?: number
  /**
   * How ffprobe is started. @default defaultSpawner(): through the shared process launcher
   * (`TRANSCODEKIT_SPAWN=direct`: from this process)
   */
  spawner?: Spawner
  /**
   * CPU seconds ffprobe may use, its `RLIMIT_CPU` on Linux (through `prlimit`, as ffmpeg's):
   * decoding one frame of each stream of a hostile input can spin threads far past the wall
   * clock timeout's view. @default 60
   */
  maxCpuSec?: number
  /** Address space ffprobe may map, in bytes: its `RLIMIT_AS` on Linux. @default 2 GiB */
  maxMemoryBytes?: number
}

// ffprobe's words for a frame it did not decode because of `-max_pixels`.
const OVER_MAX_PIXELS = /Picture size (\d+)x(\d+) exceeds specified max pixel count/

/** `prlimit` options for ffprobe: CPU seconds, address space, and no core dumps. */
function probeRlimits(options: ProbeOptions): string[] {
  const cpuSec = Math.ceil(options.maxCpuSec ?? 60)
  const memoryBytes = Math.floor(options.maxMemoryBytes ?? 2 * 1024 ** 3)
  return [
    '--core=0',
    // SIGXCPU at the soft limit; SIGKILL two seconds later, should it be ignored.
    rlimit('cpu', 'Max cpu time', cpuSec, cpuSec + 2),
    rlimit('as', 'Max address space', memoryBytes, memoryBytes),
  ]
}

export type Prober = (path: string, options?: ProbeOptions) => Promise<MediaInfo>

function num(value: unknown): number | null {
  const parsed = typeof value === 'string' || typeof value === 'number' ? Number(value) : Number.NaN
  return Number.isFinite(parsed) ? parsed : null
}

function frameRate(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined
  const [n, d] = value.split('/').map(Number)
  return n && d ? n / d : undefined
}

/**
 * Probes a local file with ffprobe. Only the `file` protocol is allowed and only the demuxers
 * in `formats`, so a playlist or concat list can never make ffprobe open another file or a
 * connection. Throws `UnsupportedMediaError` for anything that is not audio or video.
 */
export async function probeMedia(path: string, options: ProbeOptions = {}): Promise<MediaInfo> {
  const formats = (options.formats ?? ALLOWED_INPUT_FORMATS).join(',')
  const maxPixels = options.maxFramePixels ?? Number.POSITIVE_INFINITY
  // ffprobe takes an int: past it, its own bound (INT_MAX) is the same as none.
  const pixelArgs =
    maxPixels < 2 ** 31 - 1 ? ['-max_pixels', String(Math.max(1, Math.floor(maxPixels)))] : []
  let stdout: string
  let stderr: string
  try {
    ;({ stdout, stderr } = await runProcess(
      ...dieWithParent(
        options.ffprobePath ?? ffprobePath(),
        [
          ...pixelArgs,
          '-v',
          'error',
          '-protocol_whitelist',
          'file',
          '-format_whitelist',
          formats,
          '-print_format',
          'json',
          '-show_format',
          '-show_streams',
          `file:${path}`,
        ],
        probeRlimits(options),
      ),
      {
        signal: options.signal,
        timeoutMs: options.timeoutMs ?? 30_000,
        maxOutputBytes: 8 * 1024 * 1024,
        spawner: options.spawner ?? defaultSpawner(),
      },
    ))
  } catch (error) {
    if (options.signal?.aborted) throw error
    // The launcher died: not the input's fault.
    if (error instanceof EngineError) throw error
    throw new UnsupportedMediaError('the input is not a media file ffprobe can read', {
      cause: error,
    })
  }
  const raw = JSON.parse(stdout) as {
    format?: Record<string, unknown>
    streams?: Array<Record<string, unknown>>
  }
  const overMaxPixels = OVER_MAX_PIXELS.exec(stderr)
  const formatName = typeof raw.format?.format_name === 'string' ? raw.format.format_name : ''
  const streams: MediaStream[] = (raw.streams ?? []).flatMap((s) => {
    const type = s.codec_type
    if (
      type !== 'audio' &&
      type !== 'video' &&
      type !== 'subtitle' &&
      type !== 'data' &&
      type !== 'attachment'
    )
      return []
    // A cover picture in an mp3 or m4a is a video stream of one frame: not a video.
    const disposition = s.disposition as Record<string, number> | undefined
    if (type === 'video' && disposition?.attached_pic === 1) return []
    const stream: MediaStream = {
      index: Number(s.index),
      type,
      codec: String(s.codec_name ?? 'unknown'),
      durationSec: num(s.duration),
      bitRate: num(s.bit_rate),
    }
    if (type === 'video') {
      stream.width = Number(s.width)
      stream.height = Number(s.height)
      // Not decoded for its size: that size, so that the limits refuse it rather than see 0.
      if (!(stream.width > 0 && stream.height > 0) && overMaxPixels) {
        stream.width = Number(overMaxPixels[1])
        stream.height = Number(overMaxPixels[2])
      }
      const rate = frameRate(s.avg_frame_rate) ?? frameRate(s.r_frame_rate)
      if (rate) stream.frameRate = rate
    }
    if (type === 'audio') {
      stream.sampleRate = Number(s.sample_rate)
      stream.channels = Number(s.channels)
    }
    return [stream]
  })
  if (!streams.some((s) => s.type === 'audio' || s.type === 'video')) {
    throw new UnsupportedMediaError('the input has no audio or video stream')
  }
  return {
    formatName,
    durationSec: num(raw.format?.duration),
    bitRate: num(raw.format?.bit_rate),
    streams,
  }
}
