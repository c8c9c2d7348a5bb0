import { type Static, Type } from '@sinclair/typebox'

/**
 * A preset says what an output is, not how one engine makes it: every engine (ffmpeg,
 * Elastic Transcoder, MediaConvert) derives its own settings from this one description.
 * Custom presets are plain data checked against `PresetSchema`.
 */
export const AudioSpecSchema = Type.Object(
  {
    codec: Type.Union([
      Type.Literal('pcm_s16le'),
      Type.Literal('flac'),
      Type.Literal('mp3'),
      Type.Literal('aac'),
      Type.Literal('opus'),
      Type.Literal('vorbis'),
    ]),
    /** Bits per second, for lossy codecs. */
    bitrate: Type.Optional(Type.Integer({ minimum: 8_000, maximum: 640_000 })),
    sampleRate: Type.Optional(Type.Integer({ minimum: 8_000, maximum: 192_000 })),
    channels: Type.Optional(Type.Integer({ minimum: 1, maximum: 8 })),
  },
  { additionalProperties: false },
)

export const VideoSpecSchema = Type.Object(
  {
    codec: Type.Union([Type.Literal('h264'), Type.Literal('vp8'), Type.Literal('vp9')]),
    /** The picture is scaled down to fit, keeping its aspect ratio; never scaled up. */
    maxWidth: Type.Integer({ minimum: 16, maximum: 7680 }),
    maxHeight: Type.Integer({ minimum: 16, maximum: 4320 }),
    bitrate: Type.Optional(Type.Integer({ minimum: 50_000, maximum: 100_000_000 })),
    maxFrameRate: Type.Optional(Type.Number({ minimum: 1, maximum: 120 })),
    profile: Type.Optional(
      Type.Union([Type.Literal('baseline'), Type.Literal('main'), Type.Literal('high')]),
    ),
  },
  { additionalProperties: false },
)

export const ImageSpecSchema = Type.Object(
  {
    format: Type.Union([Type.Literal('jpg'), Type.Literal('png')]),
    /** `frame`: a still from the video; `waveform`: a picture of the audio. */
    source: Type.Union([Type.Literal('frame'), Type.Literal('waveform')]),
    maxWidth: Type.Integer({ minimum: 16, maximum: 7680 }),
    maxHeight: Type.Integer({ minimum: 16, maximum: 4320 }),
    /** Where the still is taken, as a share of the duration. @default 0.1 */
    atFraction: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  },
  { additionalProperties: false },
)

export const HlsSpecSchema = Type.Object(
  { segmentSec: Type.Integer({ minimum: 1, maximum: 60 }) },
  { additionalProperties: false },
)

export const PresetSchema = Type.Object(
  {
    /** Canonical id: lowercase letters, digits and dashes. Also the output's file name. */
    id: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }),
    /** Other names that resolve to this preset (Elastic Transcoder system ids, short names). */
    aliases: Type.Optional(
      Type.Array(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' })),
    ),
    description: Type.String({ maxLength: 200 }),
    container: Type.Union([
      Type.Literal('wav'),
      Type.Literal('flac'),
      Type.Literal('mp3'),
      Type.Literal('mp4'),
      Type.Literal('webm'),
      Type.Literal('ogg'),
      Type.Literal('hls'),
      Type.Literal('image'),
    ]),
    /** Extension of the output file, without the dot. */
    extension: Type.String({ pattern: '^[a-z0-9]{1,8}$' }),
    contentType: Type.String({ pattern: '^[a-z]+/[a-z0-9.+-]+$' }),
    audio: Type.Optional(AudioSpecSchema),
    video: Type.Optional(VideoSpecSchema),
    image: Type.Optional(ImageSpecSchema),
    hls: Type.Optional(HlsSpecSchema),
    /** The Elastic Transcoder preset this corresponds to, system or custom. */
    elasticTranscoderPresetId: Type.Optional(Type.String({ pattern: '^[0-9]{13}-[a-z0-9]{6}$' })),
  },
  { additionalProperties: false, $id: 'TranscodekitPreset', title: 'Preset' },
)

export type Preset = Static<typeof PresetSchema>
export type AudioSpec = Static<typeof AudioSpecSchema>
export type VideoSpec = Static<typeof VideoSpecSchema>
export type ImageSpec = Static<typeof ImageSpecSchema>

/** What an input must carry for a preset to apply to it. */
export function presetNeeds(preset: Preset): 'audio' | 'video' {
  if (preset.video || preset.image?.source === 'frame') return 'video'
  return 'audio'
}
