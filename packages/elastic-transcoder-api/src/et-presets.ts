import type { Preset, PresetCatalog } from '@transcodekit/core'

/** Elastic Transcoder's preset ids: 13 digits, a dash, 6 lower-case letters or digits. */
export const ET_PRESET_ID = /^\d{13}-[a-z0-9]{6}$/

const AUDIO_CODECS: Record<string, string> = {
  aac: 'AAC',
  mp3: 'mp3',
  flac: 'flac',
  pcm_s16le: 'pcm',
  vorbis: 'vorbis',
  opus: 'vorbis',
}
const VIDEO_CODECS: Record<string, string> = { h264: 'H.264', vp8: 'vp8', vp9: 'vp9' }
const CONTAINERS: Record<string, string> = {
  mp4: 'mp4',
  wav: 'wav',
  flac: 'flac',
  mp3: 'mp3',
  webm: 'webm',
  ogg: 'ogg',
  hls: 'ts',
}

/** A system preset as the API lists it: its Elastic Transcoder id and the core preset behind it. */
export interface EtSystemPreset {
  id: string
  preset: Preset
}

/**
 * Every Elastic Transcoder system preset the catalog runs, sorted by id: each preset's
 * `elasticTranscoderPresetId` and every alias shaped like an ET id (one core preset may stand
 * for several ET presets). Image presets have no ET counterpart (ET made thumbnails beside an
 * output) and are left out.
 */
export function systemPresets(catalog: PresetCatalog): EtSystemPreset[] {
  const byId = new Map<string, Preset>()
  for (const preset of catalog.list()) {
    if (preset.container === 'image') continue
    for (const id of [preset.elasticTranscoderPresetId, ...(preset.aliases ?? [])]) {
      if (id && ET_PRESET_ID.test(id) && !byId.has(id)) byId.set(id, preset)
    }
  }
  return [...byId.entries()]
    .map(([id, preset]) => ({ id, preset }))
    .sort((a, b) => a.id.localeCompare(b.id))
}

/** The `Preset` object of Elastic Transcoder's API for a system preset. */
export function presetView(system: EtSystemPreset, arnPrefix: string): Record<string, unknown> {
  const { id, preset } = system
  return {
    Id: id,
    Arn: `${arnPrefix}:preset/${id}`,
    Name: `System preset: ${preset.description}`,
    Description: `${preset.description} (transcodekit preset ${preset.id})`,
    Container: CONTAINERS[preset.container] ?? preset.container,
    Type: 'System',
    ...(preset.audio
      ? {
          Audio: {
            Codec: AUDIO_CODECS[preset.audio.codec] ?? preset.audio.codec,
            SampleRate: String(preset.audio.sampleRate ?? 'auto'),
            BitRate: preset.audio.bitrate ? String(preset.audio.bitrate / 1000) : undefined,
            Channels: String(preset.audio.channels ?? 'auto'),
          },
        }
      : {}),
    ...(preset.video
      ? {
          Video: {
            Codec: VIDEO_CODECS[preset.video.codec] ?? preset.video.codec,
            MaxWidth: String(preset.video.maxWidth),
            MaxHeight: String(preset.video.maxHeight),
            BitRate: preset.video.bitrate ? String(preset.video.bitrate / 1000) : 'auto',
            FrameRate: 'auto',
            MaxFrameRate: preset.video.maxFrameRate ? String(preset.video.maxFrameRate) : undefined,
            SizingPolicy: 'ShrinkToFit',
            PaddingPolicy: 'NoPad',
            DisplayAspectRatio: 'auto',
          },
        }
      : {}),
  }
}
