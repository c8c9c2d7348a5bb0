import type { Preset } from './preset-schema.ts'

const ET = '1351620000001-'

function aac(kbps: number, etSuffix: string, aliases: string[] = []): Preset {
  return {
    id: `aac-${kbps}k`,
    aliases: [`${ET}${etSuffix}`, ...aliases],
    description: `AAC ${kbps} kb/s in an MP4 (M4A) container`,
    container: 'mp4',
    extension: 'm4a',
    contentType: 'audio/mp4',
    audio: { codec: 'aac', bitrate: kbps * 1000, sampleRate: 44_100, channels: 2 },
    elasticTranscoderPresetId: `${ET}${etSuffix}`,
  }
}

function mp3(kbps: number, etSuffix: string, aliases: string[] = []): Preset {
  return {
    id: `mp3-${kbps}k`,
    aliases: [`${ET}${etSuffix}`, ...aliases],
    description: `MP3 ${kbps} kb/s`,
    container: 'mp3',
    extension: 'mp3',
    contentType: 'audio/mpeg',
    audio: { codec: 'mp3', bitrate: kbps * 1000, sampleRate: 44_100, channels: 2 },
    elasticTranscoderPresetId: `${ET}${etSuffix}`,
  }
}

function mp4(
  name: string,
  etSuffix: string,
  maxWidth: number,
  maxHeight: number,
  videoKbps: number,
  aliases: string[] = [],
): Preset {
  return {
    id: `mp4-${name}`,
    aliases: [`${ET}${etSuffix}`, ...aliases],
    description: `H.264 ${maxWidth}×${maxHeight} at ${videoKbps} kb/s with AAC 160 kb/s, in MP4`,
    container: 'mp4',
    extension: 'mp4',
    contentType: 'video/mp4',
    video: {
      codec: 'h264',
      maxWidth,
      maxHeight,
      bitrate: videoKbps * 1000,
      maxFrameRate: 30,
      profile: 'main',
    },
    audio: { codec: 'aac', bitrate: 160_000, sampleRate: 44_100, channels: 2 },
    elasticTranscoderPresetId: `${ET}${etSuffix}`,
  }
}

function hls(
  name: string,
  etSuffix: string,
  maxWidth: number,
  maxHeight: number,
  videoKbps: number,
  aliases: string[] = [],
): Preset {
  return {
    id: `hls-${name}`,
    aliases: [`${ET}${etSuffix}`, ...aliases],
    description: `HLS v3, H.264 ${maxWidth}×${maxHeight} at ${videoKbps} kb/s, 10-second segments`,
    container: 'hls',
    extension: 'm3u8',
    contentType: 'application/vnd.apple.mpegurl',
    video: {
      codec: 'h264',
      maxWidth,
      maxHeight,
      bitrate: videoKbps * 1000,
      maxFrameRate: 30,
      profile: 'main',
    },
    audio: { codec: 'aac', bitrate: 128_000, sampleRate: 44_100, channels: 2 },
    hls: { segmentSec: 10 },
    elasticTranscoderPresetId: `${ET}${etSuffix}`,
  }
}

/**
 * The built-in catalog: the Elastic Transcoder system presets an app of the old service used
 * (so its preset ids keep working on every engine), under readable names.
 */
export const builtinPresets: readonly Preset[] = Object.freeze([
  {
    id: 'wav',
    aliases: [`${ET}300300`, 'wav-44k'],
    description: 'WAV, 16-bit PCM, 44.1 kHz stereo',
    container: 'wav',
    extension: 'wav',
    contentType: 'audio/wav',
    audio: { codec: 'pcm_s16le', sampleRate: 44_100, channels: 2 },
    elasticTranscoderPresetId: `${ET}300300`,
  },
  {
    id: 'flac',
    aliases: [`${ET}300110`],
    description: 'FLAC, lossless, 44.1 kHz stereo',
    container: 'flac',
    extension: 'flac',
    contentType: 'audio/flac',
    audio: { codec: 'flac', sampleRate: 44_100, channels: 2 },
    elasticTranscoderPresetId: `${ET}300110`,
  },
  aac(256, '100110', ['m4a']),
  aac(160, '100120'),
  aac(128, '100130'),
  aac(64, '100141'),
  mp3(320, '300010'),
  mp3(192, '300020', ['mp3']),
  mp3(160, '300030'),
  mp3(128, '300040'),
  mp4('1080p', '000001', 1920, 1080, 5400),
  mp4('720p', '000010', 1280, 720, 2400, ['mp4']),
  mp4('480p', '000020', 854, 480, 1200),
  hls('2m', '200010', 1024, 768, 1872),
  hls('1m5', '200020', 960, 640, 1372),
  hls('1m', '200030', 640, 432, 872, ['hls']),
  hls('600k', '200040', 480, 320, 472),
  hls('400k', '200050', 400, 288, 272),
  {
    id: 'hls-audio-160k',
    aliases: [`${ET}200060`],
    description: 'HLS v3, audio only, AAC 160 kb/s, 10-second segments',
    container: 'hls',
    extension: 'm3u8',
    contentType: 'application/vnd.apple.mpegurl',
    audio: { codec: 'aac', bitrate: 160_000, sampleRate: 44_100, channels: 2 },
    hls: { segmentSec: 10 },
    elasticTranscoderPresetId: `${ET}200060`,
  },
  {
    id: 'webm-720p',
    aliases: [`${ET}100240`, 'webm'],
    description: 'WebM, VP8 1280×720 with Vorbis audio',
    container: 'webm',
    extension: 'webm',
    contentType: 'video/webm',
    video: { codec: 'vp8', maxWidth: 1280, maxHeight: 720, bitrate: 2_000_000, maxFrameRate: 30 },
    audio: { codec: 'vorbis', bitrate: 160_000, sampleRate: 44_100, channels: 2 },
    elasticTranscoderPresetId: `${ET}100240`,
  },
  {
    id: 'thumbnail',
    aliases: ['poster'],
    description: 'A JPEG still from 10 % into the video, at most 640×360',
    container: 'image',
    extension: 'jpg',
    contentType: 'image/jpeg',
    image: { format: 'jpg', source: 'frame', maxWidth: 640, maxHeight: 360, atFraction: 0.1 },
  },
  {
    id: 'waveform',
    description: 'A PNG picture of the audio waveform, 1200×240',
    container: 'image',
    extension: 'png',
    contentType: 'image/png',
    image: { format: 'png', source: 'waveform', maxWidth: 1200, maxHeight: 240 },
  },
] satisfies Preset[])
