import { isHlsSegmentOf } from '@transcodekit/core'

/** A URI line that is a bare file name: relative to the playlist, in its own folder. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/** The media type of HLS playlists (RFC 8216 §4), whatever a storage recorded for one. */
export const HLS_PLAYLIST_TYPE = 'application/vnd.apple.mpegurl'

/** `true` for an HLS playlist's media type (and its older alias). */
export function isHlsPlaylist(contentType: string): boolean {
  const type = contentType.split(';')[0]!.trim().toLowerCase()
  return type === HLS_PLAYLIST_TYPE || type === 'application/x-mpegurl'
}

/** `true` for the key of an HLS playlist: the engine names them `<output>.m3u8`. */
export function isHlsPlaylistKey(key: string): boolean {
  return key.endsWith('.m3u8')
}

/**
 * The playlist stored under `playlistKey`, with each URI line that names one of its own
 * segments (`isHlsSegmentOf`) replaced by `segmentUri(segmentKey, uri)`: a signed relative
 * URI, or a presigned absolute URL. Any other URI (another file, a sub-folder, an absolute
 * URL) is left as written: a playlist can never open files beyond its own output.
 *
 * Only URI lines are touched (RFC 8216 §4.1: a line not starting with `#` and not blank); the
 * engine writes MPEG-TS segments, so no tag carries a `URI` attribute that would need one.
 */
export async function signSegmentUris(
  playlist: string,
  playlistKey: string,
  segmentUri: (segmentKey: string, uri: string) => string | Promise<string>,
): Promise<string> {
  const folder = playlistKey.slice(0, playlistKey.lastIndexOf('/') + 1)
  const lines = playlist.split('\n').map(async (line) => {
    const uri = line.trim()
    if (uri === '' || uri.startsWith('#') || !FILE_NAME.test(uri)) return line
    const key = `${folder}${uri}`
    if (!isHlsSegmentOf(playlistKey, key)) return line
    const replacement = await segmentUri(key, uri)
    return line.replace(uri, () => replacement)
  })
  return (await Promise.all(lines)).join('\n')
}
