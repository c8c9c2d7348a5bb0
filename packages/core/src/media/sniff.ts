import { open } from 'node:fs/promises'
import type { MediaInfo } from '../model.ts'

/**
 * Demuxers an input may be opened with. Text formats that make ffmpeg open other files or
 * URLs (hls, concat, ffconcat, sdp, rtsp, image2 sequences, …) are not on it.
 */
export const ALLOWED_INPUT_FORMATS: readonly string[] = [
  'mp3',
  'wav',
  'flac',
  'aac',
  'ogg',
  'mov,mp4,m4a,3gp,3g2,mj2',
  'matroska,webm',
  'aiff',
  'avi',
  'mpegts',
  'mpeg',
  'asf',
  'flv',
  'amr',
  'ac3',
  'eac3',
  'caf',
  'w64',
]

const TEXT_SIGNATURES = [
  '#extm3u',
  '#ext-x-',
  'ffconcat',
  'file ',
  '<',
  '{',
  '[playlist]',
  'v=0',
  'rtsp:',
  'http',
]

/**
 * Refuses inputs whose first bytes show a text format (playlist, concat list, markup, SDP):
 * these must never reach a demuxer, whatever their name or claimed type. Returns the
 * reason, or `null`.
 */
export function sniffRejection(head: Uint8Array): string | null {
  let text = Buffer.from(head.subarray(0, 512)).toString('latin1')
  if (text.charCodeAt(0) === 0xef && text.charCodeAt(1) === 0xbb && text.charCodeAt(2) === 0xbf) {
    text = text.slice(3)
  }
  const start = text.trimStart().toLowerCase()
  for (const signature of TEXT_SIGNATURES) {
    if (start.startsWith(signature)) return `the input is text (${signature.trim()}…), not media`
  }
  if (head.length === 0) return 'the input is empty'
  return null
}

const CONTENT_TYPES: Record<string, [contentType: string, extension: string]> = {
  mp3: ['audio/mpeg', 'mp3'],
  wav: ['audio/wav', 'wav'],
  flac: ['audio/flac', 'flac'],
  aac: ['audio/aac', 'aac'],
  ogg: ['audio/ogg', 'ogg'],
  aiff: ['audio/aiff', 'aiff'],
  avi: ['video/x-msvideo', 'avi'],
  mpegts: ['video/mp2t', 'ts'],
  mpeg: ['video/mpeg', 'mpg'],
  asf: ['video/x-ms-asf', 'asf'],
  flv: ['video/x-flv', 'flv'],
  amr: ['audio/amr', 'amr'],
  ac3: ['audio/ac3', 'ac3'],
  eac3: ['audio/eac3', 'eac3'],
  caf: ['audio/x-caf', 'caf'],
  w64: ['audio/x-w64', 'w64'],
}

/** Content type and file extension of a probed input, from its demuxer and streams. */
export function describeMedia(media: MediaInfo): { contentType: string; extension: string } {
  const hasVideo = media.streams.some((stream) => stream.type === 'video')
  if (media.formatName.startsWith('mov,')) {
    return hasVideo
      ? { contentType: 'video/mp4', extension: 'mp4' }
      : { contentType: 'audio/mp4', extension: 'm4a' }
  }
  if (media.formatName === 'matroska,webm') {
    const webm = media.streams.every((s) =>
      ['vp8', 'vp9', 'av1', 'opus', 'vorbis'].includes(s.codec),
    )
    if (webm)
      return hasVideo
        ? { contentType: 'video/webm', extension: 'webm' }
        : { contentType: 'audio/webm', extension: 'webm' }
    return { contentType: hasVideo ? 'video/x-matroska' : 'audio/x-matroska', extension: 'mkv' }
  }
  const known = CONTENT_TYPES[media.formatName]
  if (known) {
    const [contentType, extension] = known
    return {
      contentType:
        hasVideo && contentType.startsWith('audio/')
          ? contentType.replace('audio/', 'video/')
          : contentType,
      extension,
    }
  }
  return { contentType: 'application/octet-stream', extension: 'bin' }
}

/** `sniffRejection` of a file's first 4 KiB. */
export async function sniffFileRejection(path: string): Promise<string | null> {
  const handle = await open(path, 'r')
  try {
    const head = Buffer.alloc(4096)
    const { bytesRead } = await handle.read(head, 0, head.length, 0)
    return sniffRejection(head.subarray(0, bytesRead))
  } finally {
    await handle.close()
  }
}
