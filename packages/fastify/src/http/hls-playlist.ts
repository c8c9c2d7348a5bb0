import { isHlsSegmentOf } from '@transcodekit/core'

/** A URI line that is a bare file name: relative to the playlist, in its own folder. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/** `true` for the media type local storage gives `.m3u8` files (and its older alias). */
export function isHlsPlaylist(contentType: string): boolean {
  const type = contentType.split(';')[0]!.trim().toLowerCase()
  return type === 'application/vnd.apple.mpegurl' || type === 'application/x-mpegurl'
}

/**
 * The playlist stored under `playlistKey`, with a signature appended to each URI line that
 * names one of its own segments (`isHlsSegmentOf`), so a player that holds the playlist's
 * signed URL can fetch them: the URIs stay relative, resolved against the playlist's URL.
 * Any other URI (another file, a sub-folder, an absolute URL) is left as written and gets no
 * signature: a playlist can never open files beyond its own output.
 *
 * Only URI lines are touched (RFC 8216 §4.1: a line not starting with `#` and not blank); the
 * engine writes MPEG-TS segments, so no tag carries a `URI` attribute that would need one.
 */
export function signSegmentUris(
  playlist: string,
  playlistKey: string,
  sign: (segmentKey: string) => string,
): string {
  const folder = playlistKey.slice(0, playlistKey.lastIndexOf('/') + 1)
  return playlist
    .split('\n')
    .map((line) => {
      const uri = line.trim()
      if (uri === '' || uri.startsWith('#') || !FILE_NAME.test(uri)) return line
      const key = `${folder}${uri}`
      return isHlsSegmentOf(playlistKey, key) ? line.replace(uri, `${uri}?${sign(key)}`) : line
    })
    .join('\n')
}
