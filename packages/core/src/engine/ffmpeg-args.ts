import { UnsupportedMediaError } from '../errors.ts'
import { ALLOWED_INPUT_FORMATS } from '../media/sniff.ts'
import type { MediaInfo, MediaStream } from '../model.ts'
import type { AudioSpec, ImageSpec, Preset, VideoSpec } from '../presets/preset-schema.ts'

/** What one output adds to the single ffmpeg command line of a job. */
export interface FfmpegOutputPlan {
  /** Chains to join into the job's `-filter_complex` (labels are unique to this output). */
  filterComplex: string[]
  /** The output's options followed by its path. */
  args: string[]
}

export interface FfmpegOutputContext {
  /** Position of the output in the job: keeps filter labels unique. */
  index: number
  /** The probed input. */
  media: MediaInfo
  /** Absolute path of the output's main file. */
  path: string
  /** For HLS: absolute path pattern of the segments, with `%05d`. */
  segmentPattern?: string
  /** libx264 speed preset. @default 'veryfast' */
  x264Preset?: string
}

/**
 * The demuxer to force with `-f`: the first name of the probed format (`mov` for
 * `mov,mp4,m4a,3gp,3g2,mj2`), and only for formats on the allow list, so that a playlist or
 * concat list can never be opened by its own demuxer.
 */
export function demuxerName(formatName: string): string {
  if (!ALLOWED_INPUT_FORMATS.includes(formatName)) {
    throw new UnsupportedMediaError(`input format ${JSON.stringify(formatName)} is not allowed`)
  }
  return formatName.split(',')[0] as string
}

/**
 * The input half of the command line: only the `file` protocol (the input is always a file
 * of the job's work folder, never a pipe), only the demuxers the probe allows (for what the
 * input's demuxer would open in turn: a reference, a playlist), that demuxer forced from the
 * probe, the file given with an explicit `file:` protocol, no frame of more than
 * `maxFramePixels` decoded (ffmpeg takes an int: past it, its own bound), and no more than
 * `maxDurationSec` of it read, whatever its container declared.
 */
export function ffmpegInputArgs(
  path: string,
  media: MediaInfo,
  maxFramePixels = Number.POSITIVE_INFINITY,
  maxDurationSec = Number.POSITIVE_INFINITY,
): string[] {
  const pixels =
    maxFramePixels < 2 ** 31 - 1
      ? ['-max_pixels', String(Math.max(1, Math.floor(maxFramePixels)))]
      : []
  const duration = Number.isFinite(maxDurationSec) ? ['-t', String(maxDurationSec)] : []
  return [
    ...pixels,
    ...duration,
    '-protocol_whitelist',
    'file',
    '-format_whitelist',
    ALLOWED_INPUT_FORMATS.join(','),
    '-f',
    demuxerName(media.formatName),
    '-i',
    `file:${path}`,
  ]
}

function firstStream(media: MediaInfo, type: 'audio' | 'video'): MediaStream | undefined {
  return media.streams.find((stream) => stream.type === type)
}

function kbits(bitsPerSecond: number): string {
  return `${Math.round(bitsPerSecond / 1000)}k`
}

const OPUS_RATES = [48_000, 24_000, 16_000, 12_000, 8_000]

/**
 * ffmpeg's encoder for each audio codec, and the bit rate of the lossy ones when the preset
 * names none (libmp3lame with -b:a is constant bit rate).
 */
const AUDIO_ENCODERS: Record<AudioSpec['codec'], { encoder: string; defaultBitrate?: number }> = {
  pcm_s16le: { encoder: 'pcm_s16le' },
  flac: { encoder: 'flac' },
  mp3: { encoder: 'libmp3lame', defaultBitrate: 192_000 },
  aac: { encoder: 'aac', defaultBitrate: 128_000 },
  opus: { encoder: 'libopus', defaultBitrate: 96_000 },
  vorbis: { encoder: 'libvorbis', defaultBitrate: 128_000 },
}

function audioCodecArgs(audio: AudioSpec): string[] {
  const { encoder, defaultBitrate } = AUDIO_ENCODERS[audio.codec]
  const args = ['-c:a', encoder]
  if (defaultBitrate !== undefined) args.push('-b:a', kbits(audio.bitrate ?? defaultBitrate))
  let sampleRate = audio.sampleRate
  // Opus only encodes at these rates: take the nearest one at or above what was asked.
  if (audio.codec === 'opus') {
    sampleRate = [...OPUS_RATES].reverse().find((rate) => rate >= (sampleRate ?? 48_000)) ?? 48_000
  }
  if (sampleRate !== undefined) args.push('-ar', String(sampleRate))
  if (audio.channels !== undefined) args.push('-ac', String(audio.channels))
  return args
}

/**
 * A scale filter that fits the picture in the box keeping its aspect ratio, never scales up
 * and gives even dimensions (4:2:0 needs them). Written as an expression on the decoded size
 * rather than on the probed one, so a rotated phone video still fits.
 */
export function fitScaleFilter(maxWidth: number, maxHeight: number): string {
  const factor = `min(1,min(${maxWidth}/iw,${maxHeight}/ih))`
  return `scale=w='max(2,trunc(iw*${factor}/2)*2)':h='max(2,trunc(ih*${factor}/2)*2)'`
}

function videoFilters(video: VideoSpec, stream: MediaStream): string {
  const filters = [fitScaleFilter(video.maxWidth, video.maxHeight)]
  if (video.maxFrameRate !== undefined && (stream.frameRate ?? 0) > video.maxFrameRate) {
    filters.push(`fps=${video.maxFrameRate}`)
  }
  return filters.join(',')
}

function videoCodecArgs(video: VideoSpec, x264Preset: string): string[] {
  const bitrate = video.bitrate
  const rate = bitrate === undefined ? [] : ['-b:v', kbits(bitrate)]
  switch (video.codec) {
    case 'h264':
      return [
        '-c:v',
        'libx264',
        '-preset',
        x264Preset,
        '-profile:v',
        video.profile ?? 'main',
        '-pix_fmt',
        'yuv420p',
        ...rate,
        ...(bitrate === undefined
          ? []
          : ['-maxrate', kbits(bitrate * 1.5), '-bufsize', kbits(bitrate * 2)]),
      ]
    case 'vp8':
      return [
        '-c:v',
        'libvpx',
        '-deadline',
        'good',
        '-cpu-used',
        '4',
        '-pix_fmt',
        'yuv420p',
        ...rate,
      ]
    case 'vp9':
      return [
        '-c:v',
        'libvpx-vp9',
        '-deadline',
        'good',
        '-cpu-used',
        '4',
        '-pix_fmt',
        'yuv420p',
        ...rate,
      ]
  }
}

function containerArgs(preset: Preset, context: FfmpegOutputContext): string[] {
  switch (preset.container) {
    case 'wav':
      return ['-f', 'wav']
    case 'flac':
      return ['-f', 'flac']
    case 'mp3':
      return ['-f', 'mp3']
    case 'mp4':
      // The index up front: players start before the whole file has arrived.
      return ['-f', 'mp4', '-movflags', '+faststart']
    case 'webm':
      return ['-f', 'webm']
    case 'ogg':
      return ['-f', 'ogg']
    case 'hls': {
      if (!context.segmentPattern) throw new Error('an HLS output needs a segment pattern')
      return [
        '-f',
        'hls',
        '-hls_time',
        String(preset.hls?.segmentSec ?? 10),
        '-hls_playlist_type',
        'vod',
        '-hls_list_size',
        '0',
        '-hls_segment_filename',
        context.segmentPattern,
      ]
    }
    case 'image':
      return ['-f', 'image2', '-update', '1']
  }
}

function imagePlan(
  preset: Preset,
  image: ImageSpec,
  context: FfmpegOutputContext,
): FfmpegOutputPlan {
  const { media, index } = context
  const codec = image.format === 'png' ? ['-c:v', 'png'] : ['-c:v', 'mjpeg', '-q:v', '3']
  if (image.source === 'waveform') {
    const audio = firstStream(media, 'audio')
    if (!audio) throw new UnsupportedMediaError(`preset ${preset.id} needs an audio input`)
    const label = `wave${index}`
    // Downmixed and resampled first: showwavespic keeps every sample until the end.
    const chain =
      `[0:${audio.index}]aresample=8000,aformat=channel_layouts=mono,` +
      `showwavespic=s=${image.maxWidth}x${image.maxHeight}:colors=0x3b82f6[${label}]`
    return {
      filterComplex: [chain],
      args: [
        '-map',
        `[${label}]`,
        '-frames:v',
        '1',
        ...codec,
        ...containerArgs(preset, context),
        context.path,
      ],
    }
  }
  const video = firstStream(media, 'video')
  if (!video) throw new UnsupportedMediaError(`preset ${preset.id} needs a video input`)
  // The video track's own length first: it may end long before a sound track.
  const duration = video.durationSec ?? media.durationSec ?? 0
  // Output-side seek: the frames before it are decoded for the other outputs anyway.
  const at = Math.max(0, Math.min(duration * (image.atFraction ?? 0.1), duration - 0.1))
  return {
    filterComplex: [],
    args: [
      '-map',
      `0:${video.index}`,
      '-ss',
      at.toFixed(3),
      '-frames:v',
      '1',
      '-vf',
      fitScaleFilter(image.maxWidth, image.maxHeight),
      ...codec,
      ...containerArgs(preset, context),
      context.path,
    ],
  }
}

/**
 * The arguments of one output of a job, from its preset: stream selection by the probed
 * stream index (a cover picture is never taken for video), codec, scaling and container.
 * Audio-only presets drop video; a video preset keeps the input's audio when there is one.
 */
export function ffmpegOutputArgs(preset: Preset, context: FfmpegOutputContext): FfmpegOutputPlan {
  if (preset.image) return imagePlan(preset, preset.image, context)
  const { media } = context
  const audioStream = firstStream(media, 'audio')
  const args: string[] = []
  if (preset.video) {
    const videoStream = firstStream(media, 'video')
    if (!videoStream) throw new UnsupportedMediaError(`preset ${preset.id} needs a video input`)
    args.push('-map', `0:${videoStream.index}`)
    args.push('-vf', videoFilters(preset.video, videoStream))
    args.push(...videoCodecArgs(preset.video, context.x264Preset ?? 'veryfast'))
    if (preset.hls) {
      // Every segment must start on a key frame.
      args.push('-force_key_frames', `expr:gte(t,n_forced*${preset.hls.segmentSec})`)
    }
  } else {
    args.push('-vn')
  }
  if (preset.audio && audioStream) {
    args.push('-map', `0:${audioStream.index}`, ...audioCodecArgs(preset.audio))
  } else if (!preset.video) {
    throw new UnsupportedMediaError(`preset ${preset.id} needs an audio input`)
  } else {
    args.push('-an')
  }
  args.push('-sn', '-dn', ...containerArgs(preset, context), context.path)
  return { filterComplex: [], args }
}

/**
 * The whole command line of one job: quiet, progress on stdout, never overwriting, the
 * input, one filter graph for every output that needs one, then each output.
 */
export function ffmpegCommandArgs(inputArgs: string[], outputs: FfmpegOutputPlan[]): string[] {
  const args = ['-hide_banner', '-nostdin', '-nostats', '-v', 'error', '-progress', 'pipe:1', '-n']
  args.push(...inputArgs)
  const graph = outputs.flatMap((output) => output.filterComplex)
  if (graph.length > 0) args.push('-filter_complex', graph.join(';'))
  for (const output of outputs) args.push(...output.args)
  return args
}
