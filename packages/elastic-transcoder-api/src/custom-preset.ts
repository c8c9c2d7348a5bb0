import { InvalidPresetError, type Preset, validatePreset } from '@transcodekit/core'
import { validationError } from './et-errors.ts'

// biome-ignore lint/suspicious/noExplicitAny: untrusted wire JSON, every field is checked here
type Wire = Record<string, any>

/** A CreatePreset request, checked: the ET fields to answer and the core preset to run. */
export interface CheckedPreset {
  name: string
  /** `Description`, `Container`, `Audio`, `Video` as the API answers them. */
  settings: Record<string, unknown>
  preset: Preset
}

const SAMPLE_RATES = ['22050', '32000', '44100', '48000', '96000']
/** Per ET container: the audio codecs it takes, the video codecs, the file it makes. */
const CONTAINERS: Record<
  string,
  { audio: string[]; video: string[]; extension: string; audioType: string; videoType?: string }
> = {
  mp3: { audio: ['mp3'], video: [], extension: 'mp3', audioType: 'audio/mpeg' },
  flac: { audio: ['flac'], video: [], extension: 'flac', audioType: 'audio/flac' },
  wav: { audio: ['pcm'], video: [], extension: 'wav', audioType: 'audio/wav' },
  ogg: { audio: ['vorbis'], video: [], extension: 'ogg', audioType: 'audio/ogg' },
  mp4: {
    audio: ['AAC'],
    video: ['H.264'],
    extension: 'm4a',
    audioType: 'audio/mp4',
    videoType: 'video/mp4',
  },
  webm: {
    audio: ['vorbis'],
    video: ['vp8', 'vp9'],
    extension: 'webm',
    audioType: 'audio/webm',
    videoType: 'video/webm',
  },
}
const CORE_AUDIO = { mp3: 'mp3', flac: 'flac', pcm: 'pcm_s16le', vorbis: 'vorbis', AAC: 'aac' }
const CORE_VIDEO = { 'H.264': 'h264', vp8: 'vp8', vp9: 'vp9' }
/** Fields that must be absent or hold the one value the core preset schema means. */
const FIXED_VIDEO: Record<string, string> = {
  FrameRate: 'auto',
  Resolution: 'auto',
  AspectRatio: 'auto',
  DisplayAspectRatio: 'auto',
  SizingPolicy: 'ShrinkToFit',
  PaddingPolicy: 'NoPad',
  FixedGOP: 'false',
}

function isObject(value: unknown): value is Wire {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function refuseUnknown(object: Wire, allowed: readonly string[], what: string): void {
  for (const [name, value] of Object.entries(object)) {
    if (value === undefined || value === null) continue
    if (!allowed.includes(name)) {
      throw validationError(`${what}:${name} is not supported by this Elastic Transcoder endpoint.`)
    }
  }
}

function text(value: unknown, what: string, min: number, max: number): string {
  if (typeof value !== 'string' || value.length < min || value.length > max) {
    throw validationError(`${what} must be a string of ${min} to ${max} characters.`)
  }
  return value
}

/** An integer given as a string (as ET takes them), within bounds. */
function integer(value: unknown, what: string, min: number, max: number): number {
  const n = typeof value === 'string' && /^\d{1,9}$/.test(value) ? Number(value) : Number.NaN
  if (!(n >= min && n <= max)) {
    throw validationError(`${what} must be an integer from ${min} to ${max}, as a string.`)
  }
  return n
}

function checkAudio(audio: unknown, container: string): { et: Wire; core: Preset['audio'] } {
  if (!isObject(audio)) throw validationError('Audio must be an object.')
  refuseUnknown(
    audio,
    ['Codec', 'SampleRate', 'BitRate', 'Channels', 'AudioPackingMode', 'CodecOptions'],
    'Audio',
  )
  const allowed = CONTAINERS[container]?.audio ?? []
  const codec = audio.Codec
  if (typeof codec !== 'string' || !allowed.includes(codec)) {
    throw validationError(
      `Audio:Codec ${JSON.stringify(codec)} is not supported in a ${container} container here (supported: ${allowed.join(', ')}).`,
    )
  }
  const sampleRate = audio.SampleRate ?? 'auto'
  if (sampleRate !== 'auto' && !SAMPLE_RATES.includes(sampleRate)) {
    throw validationError(`Audio:SampleRate must be auto or one of ${SAMPLE_RATES.join(', ')}.`)
  }
  const channels = audio.Channels ?? 'auto'
  if (!['auto', '1', '2'].includes(channels)) {
    throw validationError('Audio:Channels must be auto, 1 or 2.')
  }
  if (audio.AudioPackingMode !== undefined && audio.AudioPackingMode !== 'SingleTrack') {
    throw validationError('Audio:AudioPackingMode must be SingleTrack on this endpoint.')
  }
  const lossy = codec === 'mp3' || codec === 'AAC' || codec === 'vorbis'
  // ET takes a BitRate for every codec and ignores it for the lossless ones.
  const bitrate = lossy ? integer(audio.BitRate, 'Audio:BitRate', 64, 320) * 1000 : undefined
  const options = audio.CodecOptions ?? {}
  if (!isObject(options)) throw validationError('Audio:CodecOptions must be an object.')
  refuseUnknown(options, ['Profile', 'BitDepth', 'BitOrder', 'Signed'], 'Audio:CodecOptions')
  if (
    options.Profile !== undefined &&
    !(codec === 'AAC' && ['auto', 'AAC-LC'].includes(options.Profile))
  ) {
    throw validationError(
      'Audio:CodecOptions:Profile: only auto or AAC-LC (for AAC) are supported.',
    )
  }
  const lossless = codec === 'pcm' || codec === 'flac'
  if (options.BitDepth !== undefined && !(lossless && options.BitDepth === '16')) {
    throw validationError('Audio:CodecOptions:BitDepth: only 16 (for flac and pcm) is supported.')
  }
  if (options.BitOrder !== undefined && !(codec === 'pcm' && options.BitOrder === 'LittleEndian')) {
    throw validationError('Audio:CodecOptions:BitOrder: only LittleEndian (for pcm) is supported.')
  }
  if (options.Signed !== undefined && !(codec === 'pcm' && options.Signed === 'Signed')) {
    throw validationError('Audio:CodecOptions:Signed: only Signed (for pcm) is supported.')
  }
  const et: Wire = {
    Codec: codec,
    SampleRate: sampleRate,
    ...(audio.BitRate !== undefined ? { BitRate: String(audio.BitRate) } : {}),
    Channels: channels,
    ...(Object.keys(options).length > 0 ? { CodecOptions: options } : {}),
  }
  return {
    et,
    core: {
      codec: CORE_AUDIO[codec as keyof typeof CORE_AUDIO] as NonNullable<Preset['audio']>['codec'],
      ...(bitrate ? { bitrate } : {}),
      ...(sampleRate !== 'auto' ? { sampleRate: Number(sampleRate) } : {}),
      ...(channels !== 'auto' ? { channels: Number(channels) } : {}),
    },
  }
}

function checkVideo(video: unknown, container: string): { et: Wire; core: Preset['video'] } {
  if (!isObject(video)) throw validationError('Video must be an object.')
  refuseUnknown(
    video,
    [
      'Codec',
      'CodecOptions',
      'BitRate',
      'MaxWidth',
      'MaxHeight',
      'MaxFrameRate',
      ...Object.keys(FIXED_VIDEO),
    ],
    'Video',
  )
  const allowed = CONTAINERS[container]?.video ?? []
  const codec = video.Codec
  if (typeof codec !== 'string' || !allowed.includes(codec)) {
    throw validationError(
      `Video:Codec ${JSON.stringify(codec)} is not supported in a ${container} container here (supported: ${allowed.join(', ') || 'none, audio only'}).`,
    )
  }
  for (const [field, only] of Object.entries(FIXED_VIDEO)) {
    if (video[field] !== undefined && video[field] !== only) {
      throw validationError(`Video:${field} must be ${only} on this endpoint.`)
    }
  }
  const options = video.CodecOptions ?? {}
  if (!isObject(options)) throw validationError('Video:CodecOptions must be an object.')
  refuseUnknown(options, ['Profile'], 'Video:CodecOptions')
  const profile = options.Profile
  if (
    profile !== undefined &&
    !(codec === 'H.264' && ['baseline', 'main', 'high'].includes(profile))
  ) {
    throw validationError('Video:CodecOptions:Profile must be baseline, main or high (for H.264).')
  }
  const size = (value: unknown, what: string, auto: number, max: number) =>
    value === undefined || value === 'auto' ? auto : integer(value, what, 128, max)
  const maxWidth = size(video.MaxWidth, 'Video:MaxWidth', 1920, 4096)
  const maxHeight = size(video.MaxHeight, 'Video:MaxHeight', 1080, 3072)
  const bitrate =
    video.BitRate === undefined || video.BitRate === 'auto'
      ? undefined
      : integer(video.BitRate, 'Video:BitRate', 64, 62_500) * 1000
  const maxFrameRate =
    video.MaxFrameRate === undefined
      ? undefined
      : integer(video.MaxFrameRate, 'Video:MaxFrameRate', 10, 60)
  return {
    et: {
      Codec: codec,
      ...(profile ? { CodecOptions: { Profile: profile } } : {}),
      BitRate: bitrate ? String(bitrate / 1000) : 'auto',
      FrameRate: 'auto',
      MaxWidth: String(maxWidth),
      MaxHeight: String(maxHeight),
      ...(maxFrameRate ? { MaxFrameRate: String(maxFrameRate) } : {}),
      SizingPolicy: 'ShrinkToFit',
      PaddingPolicy: 'NoPad',
      DisplayAspectRatio: 'auto',
    },
    core: {
      codec: CORE_VIDEO[codec as keyof typeof CORE_VIDEO] as NonNullable<Preset['video']>['codec'],
      maxWidth,
      maxHeight,
      ...(bitrate ? { bitrate } : {}),
      ...(maxFrameRate ? { maxFrameRate } : {}),
      ...(profile ? { profile } : {}),
    },
  }
}

/**
 * Checks a CreatePreset body and maps it onto the core preset schema, or refuses it with a
 * ValidationException naming the field: containers mp3, flac, wav (pcm), ogg (vorbis), mp4
 * (AAC, with or without H.264) and webm (vp8/vp9 with vorbis); no thumbnails, watermarks,
 * fixed frame rates or resolutions, padding or stretching.
 */
export function checkPresetRequest(body: unknown, id: string): CheckedPreset {
  if (!isObject(body)) throw validationError('The request body must be a JSON object.')
  refuseUnknown(body, ['Name', 'Description', 'Container', 'Audio', 'Video'], 'CreatePreset')
  const name = text(body.Name, 'Name', 1, 40)
  const description =
    body.Description === undefined ? '' : text(body.Description, 'Description', 0, 255)
  const container = body.Container
  const kind = typeof container === 'string' ? CONTAINERS[container] : undefined
  if (!kind) {
    throw validationError(
      `Container ${JSON.stringify(container)} is not supported by this endpoint (supported: ${Object.keys(CONTAINERS).join(', ')}).`,
    )
  }
  if (body.Audio === undefined) throw validationError('Audio is required on this endpoint.')
  const audio = checkAudio(body.Audio, container)
  const video = body.Video === undefined ? null : checkVideo(body.Video, container)
  const settings = {
    Description: description,
    Container: container,
    Audio: audio.et,
    ...(video ? { Video: video.et } : {}),
  }
  try {
    const preset = validatePreset({
      id: `et-${id}`,
      description: (description || name).slice(0, 200),
      container,
      extension: video ? (container === 'mp4' ? 'mp4' : kind.extension) : kind.extension,
      contentType: video ? (kind.videoType as string) : kind.audioType,
      audio: audio.core,
      ...(video ? { video: video.core } : {}),
      elasticTranscoderPresetId: id,
    })
    return { name, settings, preset }
  } catch (error) {
    if (error instanceof InvalidPresetError) throw validationError(error.message)
    throw error
  }
}
