import { isHlsPlaylist } from './hls-playlist.ts'

/*
 * Content-Disposition for a stored file. The name may come from a client (an original file
 * name), so it is cleaned twice: an ASCII fallback for old clients and an RFC 5987 `filename*`
 * for the rest, both free of quotes, separators, control and bidi-override characters.
 */

// C0 and C1 controls, DEL, and the Unicode bidi controls (U+061C, U+200E-F, U+202A-E, U+2066-9).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/**
 * `inline` only for types a browser plays or shows without running anything: media, and HLS
 * playlists (a player reads them; a browser that does not, saves them).
 */
export function isInlineType(contentType: string): boolean {
  const type = contentType.split(';')[0]!.trim().toLowerCase()
  if (type === 'image/svg+xml') return false
  return (
    type.startsWith('audio/') ||
    type.startsWith('video/') ||
    type.startsWith('image/') ||
    isHlsPlaylist(type)
  )
}

export function contentDisposition(kind: 'inline' | 'attachment', filename: string): string {
  const clean =
    filename.replace(UNSAFE, '').replace(/[/\\]/g, '_').trim().slice(0, 200) || 'download'
  const ascii =
    clean
      .normalize('NFKD')
      .replace(/[^\x20-\x7e]/g, '')
      .replace(/["%;]/g, '_')
      .trim() || 'download'
  const encoded = encodeURIComponent(clean).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  )
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encoded}`
}
