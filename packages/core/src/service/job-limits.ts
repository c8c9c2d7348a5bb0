import {
  ConfigurationError,
  FrameRateTooHighError,
  FrameTooLargeError,
  MediaTooLongError,
  OutputTooLargeError,
} from '../errors.ts'
import type { MediaInfo } from '../model.ts'
import type { Preset } from '../presets/preset-schema.ts'

/**
 * What one job may cost, decided from the probe of its input before the job is created, for
 * every engine. Each limit refused answers with its own `MediaLimitError` code. Set a limit
 * to `Infinity` to lift it. While ffmpeg runs, its own guards (`FfmpegEngineOptions.limits`)
 * bound what the probe cannot see.
 *
 * @example
 * createTranscoder({ ...ports, limits: { maxDurationSec: 3600, maxFramePixels: 1920 * 1080 } })
 */
export interface JobLimits {
  /**
   * Longest input, in seconds (the container's duration, else the longest stream's). An
   * input whose duration is unknown is not refused here; the engine's guards bound it.
   * Refused with `MEDIA_TOO_LONG`. ffmpeg reads no more of an input than this, so one longer
   * than its container declares gives outputs cut at this length.
   * @default 14_400 (4 hours)
   */
  maxDurationSec?: number
  /**
   * Most pixels in one video frame (width × height). Refused with `FRAME_TOO_LARGE`. Neither
   * the probe nor ffmpeg decodes a larger frame: one that only comes after the first (a
   * stream may change its size) ends the job in `error` with `DECODE_FAILED`.
   * @default 16_777_216 (4096 × 4096: every 4K picture, landscape, portrait or square)
   */
  maxFramePixels?: number
  /** Highest video frame rate. Refused with `FRAME_RATE_TOO_HIGH`. @default 240 */
  maxFrameRate?: number
  /**
   * Largest estimated size of all the job's outputs together, in bytes: each preset's bit
   * rates (PCM and FLAC at their uncompressed rate) over the input's duration, plus a margin.
   * Refused with `OUTPUT_TOO_LARGE`; the ffmpeg engine also stops a job whose outputs really
   * grow past it (the job ends in `error` with the same code).
   * @default 4_294_967_296 (4 GiB)
   */
  maxOutputBytes?: number
}

export type ResolvedJobLimits = Required<JobLimits>

export function resolveJobLimits(limits: JobLimits = {}): ResolvedJobLimits {
  const resolved: ResolvedJobLimits = {
    maxDurationSec: limits.maxDurationSec ?? 4 * 60 * 60,
    maxFramePixels: limits.maxFramePixels ?? 4096 * 4096,
    maxFrameRate: limits.maxFrameRate ?? 240,
    maxOutputBytes: limits.maxOutputBytes ?? 4 * 1024 ** 3,
  }
  for (const [name, value] of Object.entries(resolved)) {
    if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) {
      throw new ConfigurationError(
        `createTranscoder: option "limits.${name}" must be a positive number`,
      )
    }
  }
  return resolved
}

/** The input's duration: the container's, else its longest stream's, else `null`. */
export function mediaDuration(media: MediaInfo): number | null {
  if (media.durationSec !== null && media.durationSec > 0) return media.durationSec
  const streams = media.streams.flatMap((s) => (s.durationSec ? [s.durationSec] : []))
  return streams.length > 0 ? Math.max(...streams) : null
}

// An H.264 picture without a set bit rate (x264's CRF 23) stays under about 0.15 bit a pixel.
const BITS_PER_PIXEL = 0.15
// Containers, segment headers and encoders that overshoot their target.
const MARGIN = 1.1

/** An upper estimate of what one output writes, in bytes, from the preset and the probe. */
export function estimateOutputBytes(preset: Preset, media: MediaInfo): number {
  if (preset.image) return preset.image.maxWidth * preset.image.maxHeight * 3
  const duration = mediaDuration(media)
  if (duration === null) return 0
  let bitsPerSec = 0
  const audioIn = media.streams.find((s) => s.type === 'audio')
  if (preset.audio && audioIn) {
    const { codec } = preset.audio
    if (codec === 'pcm_s16le' || codec === 'flac') {
      const rate = preset.audio.sampleRate ?? audioIn.sampleRate ?? 48_000
      const channels = preset.audio.channels ?? audioIn.channels ?? 2
      bitsPerSec += rate * channels * 16
    } else {
      bitsPerSec += preset.audio.bitrate ?? 192_000
    }
  }
  const videoIn = media.streams.find((s) => s.type === 'video')
  if (preset.video && videoIn) {
    if (preset.video.bitrate !== undefined) {
      bitsPerSec += preset.video.bitrate * 1.5
    } else {
      const scale = Math.min(
        1,
        preset.video.maxWidth / (videoIn.width || 1),
        preset.video.maxHeight / (videoIn.height || 1),
      )
      const pixels = (videoIn.width ?? 0) * (videoIn.height ?? 0) * scale * scale
      const rate = Math.min(videoIn.frameRate ?? 30, preset.video.maxFrameRate ?? Infinity)
      bitsPerSec += pixels * rate * BITS_PER_PIXEL
    }
  }
  return Math.ceil((bitsPerSec / 8) * duration * MARGIN)
}

/**
 * Throws the `MediaLimitError` of the first limit the job would exceed: duration, frame
 * size, frame rate, then the estimated size of all its outputs.
 */
export function checkJobLimits(
  media: MediaInfo,
  presets: readonly Preset[],
  limits: ResolvedJobLimits,
): void {
  const duration = mediaDuration(media)
  if (duration !== null && duration > limits.maxDurationSec) {
    throw new MediaTooLongError(duration, limits.maxDurationSec)
  }
  for (const stream of media.streams) {
    if (stream.type !== 'video') continue
    const width = stream.width ?? 0
    const height = stream.height ?? 0
    if (width * height > limits.maxFramePixels) {
      throw new FrameTooLargeError(width, height, limits.maxFramePixels)
    }
    if (stream.frameRate !== undefined && stream.frameRate > limits.maxFrameRate) {
      throw new FrameRateTooHighError(stream.frameRate, limits.maxFrameRate)
    }
  }
  const total = presets.reduce((sum, preset) => sum + estimateOutputBytes(preset, media), 0)
  if (total > limits.maxOutputBytes) throw new OutputTooLargeError(total, limits.maxOutputBytes)
}
