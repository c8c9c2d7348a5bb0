import type { Readable } from 'node:stream'
import { text } from 'node:stream/consumers'
import { Type } from '@sinclair/typebox'
import type { ObjectInfo, Storage } from '@transcodekit/core'
import { parseRange } from '../http/byte-range.ts'
import { ifRangeHolds, isNotModified, type Validators } from '../http/conditional-request.ts'
import { contentDisposition, isInlineType } from '../http/content-disposition.ts'
import type { FileUrlSigner } from '../http/file-url-signer.ts'
import { HLS_PLAYLIST_TYPE, isHlsPlaylistKey, signSegmentUris } from '../http/hls-playlist.ts'
import {
  InternalError,
  NotFoundError,
  RangeNotSatisfiableError,
  toHttpError,
} from '../http-errors.ts'
import type { ResolvedOptions } from '../plugin-options.ts'
import { errorResponses } from '../schemas.ts'
import type { TypedInstance } from '../typed-instance.ts'

const MAX_AGE_SEC = 3600
/**
 * The largest playlist the route signs in memory: a segment takes some 40 bytes (its
 * `#EXTINF` and URI lines), so this is about 70 hours of 10-second segments (7 hours of
 * 1-second ones), beyond what the default job limits allow (4 hours).
 */
const MAX_PLAYLIST_BYTES = 1024 * 1024

/** What the route sends for a key: the stored object, or a playlist signed in memory. */
interface Representation {
  contentType: string
  size: number
  validators: Validators
  /** `false` when each request gets other bytes: a range of one would not fit another. */
  ranges: boolean
  read(
    range: { start: number; end: number } | null,
    signal: AbortSignal,
  ): Promise<Readable | Buffer>
}

/**
 * Serves objects of a local storage at the signed URLs the API hands out (`fileUrls`): the
 * signature is this route's authorization, as a presigned URL is S3's. With a remote storage
 * (`serveFiles: false`) it serves HLS playlists only, their segments presigned by the storage:
 * a player resolves a relative segment URI without the playlist URL's query, so a presigned
 * playlist alone cannot play from a private bucket.
 */
export function registerFileRoute(
  app: TypedInstance,
  { service, fileUrls, serveFiles }: ResolvedOptions,
): void {
  const storage = service.storage
  app.get(
    '/files/*',
    {
      schema: {
        operationId: 'getFile',
        tags: ['transcodekit'],
        summary: 'Read a stored file (local storage), whole or a byte range',
        description:
          'Only through the signed URLs the API hands out (job outputs): a missing, altered ' +
          'or expired signature answers 403. Supports `Range: bytes=…` (one range, or ' +
          'ranges that merge into one; 206, or 416 when none is satisfiable), `If-Range`, ' +
          '`If-None-Match` (weak comparison, lists and `*`) and `If-Modified-Since` (304). ' +
          'Media types are served `inline`, anything else as an `attachment`, always with ' +
          '`X-Content-Type-Options: nosniff`. An HLS playlist is served with each of its ' +
          "output's segment URIs signed until the playlist URL's own expiry, so a player " +
          'needs nothing but the playlist URL. With a remote storage (S3) only the ' +
          'playlists of HLS outputs are served here, their segment URIs presigned by the ' +
          'storage (no Range, no validators: presigned anew each time).',
        params: Type.Object({ '*': Type.String({ maxLength: 1024 }) }),
        querystring: Type.Object({
          expires: Type.Optional(
            Type.String({ maxLength: 20, description: 'Expiry, seconds since the epoch' }),
          ),
          download: Type.Optional(
            Type.String({
              maxLength: 255,
              description: 'Attachment name chosen by the server, covered by the signature',
            }),
          ),
          signature: Type.Optional(
            Type.String({ maxLength: 64, description: 'HMAC-SHA256 of key, expiry and name' }),
          ),
        }),
        response: {
          200: {
            description: 'The whole file',
            content: { 'application/octet-stream': { schema: Type.String({ format: 'binary' }) } },
          },
          206: {
            description: 'A byte range of the file',
            content: { 'application/octet-stream': { schema: Type.String({ format: 'binary' }) } },
          },
          304: Type.Null({ description: 'Not modified (If-None-Match, If-Modified-Since)' }),
          ...errorResponses(403, 404, 416),
        },
      },
    },
    async (request, reply) => {
      const key = request.params['*']
      // Before anything touches the storage: an unsigned URL learns nothing, not even whether
      // the file exists.
      const { expires, download } = fileUrls.verify(key, request.query)
      const playlist = isHlsPlaylistKey(key)
      // Of a remote storage only playlists: the API hands out no other URL of this route.
      const info = playlist || serveFiles ? await storage.head(key) : null
      if (!info) throw NotFoundError(`file ${JSON.stringify(key)} was not found`)
      const file = !playlist
        ? storedObject(storage, key, info)
        : serveFiles
          ? await playlistSignedHere(storage, fileUrls, key, expires)
          : await playlistPresigned(storage, key, expires)
      const { contentType, validators } = file
      const maxAge = Math.max(0, Math.min(MAX_AGE_SEC, Math.floor(expires - Date.now() / 1000)))
      reply
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', "default-src 'none'; sandbox")
        .header('accept-ranges', file.ranges ? 'bytes' : 'none')
        .header('cache-control', `private, max-age=${maxAge}`)
      if (validators.etag) reply.header('etag', validators.etag)
      if (validators.lastModified) {
        reply.header('last-modified', validators.lastModified.toUTCString())
      }
      if (isNotModified(request.headers, validators)) return reply.status(304).send(null)

      // Range is defined for GET only (RFC 9110 §14.2), and If-Range may void it.
      const range =
        request.method === 'GET' &&
        file.ranges &&
        ifRangeHolds(request.headers['if-range'], validators)
          ? parseRange(request.headers.range, file.size)
          : null
      if (range === 'unsatisfiable') {
        const answer = toHttpError(
          RangeNotSatisfiableError(`the range is outside the file's ${file.size} bytes`),
        )
        return reply.status(416).header('content-range', `bytes */${file.size}`).send(answer)
      }
      const name = download ?? key.slice(key.lastIndexOf('/') + 1)
      const inline = download === null && isInlineType(contentType)
      const controller = new AbortController()
      reply.raw.once('close', () => controller.abort())
      const body = await file.read(range, controller.signal)
      reply
        .header('content-type', contentType)
        .header('content-disposition', contentDisposition(inline ? 'inline' : 'attachment', name))
      if (range) {
        reply
          .status(206)
          .header('content-range', `bytes ${range.start}-${range.end}/${file.size}`)
          .header('content-length', range.end - range.start + 1)
      } else {
        reply.status(200).header('content-length', file.size)
      }
      // The schema documents the bytes; the body is the storage's stream or the playlist.
      return reply.send(body as unknown as string)
    },
  )
}

function storedObject(storage: Storage, key: string, info: ObjectInfo): Representation {
  return {
    contentType: info.contentType ?? 'application/octet-stream',
    size: info.size,
    ranges: true,
    validators: {
      etag: info.etag ? `"${info.etag.replace(/"/g, '')}"` : null,
      lastModified: info.lastModified ?? null,
    },
    async read(range, signal) {
      const { body } = await storage.get(key, { range: range ?? undefined, signal })
      return body
    },
  }
}

/**
 * The playlist with its segment URIs signed until `expires`, the playlist URL's own expiry:
 * each signature still covers exactly one key, so holding the playlist opens its segments
 * and nothing else. The same stored playlist and expiry give the same bytes when
 * `segmentUri` does, so the stored ETag with the expiry is then a strong validator of them.
 */
async function signedPlaylist(
  storage: Storage,
  key: string,
  expires: number,
  segmentUri: (segmentKey: string, uri: string) => string | Promise<string>,
): Promise<Representation> {
  const { body, size, etag, lastModified } = await storage.get(key)
  if (size > MAX_PLAYLIST_BYTES) {
    body.destroy()
    throw InternalError(
      `the playlist ${JSON.stringify(key)} is ${size} bytes, more than the ${MAX_PLAYLIST_BYTES} this server signs`,
    )
  }
  const bytes = Buffer.from(await signSegmentUris(await text(body), key, segmentUri))
  return {
    contentType: HLS_PLAYLIST_TYPE,
    size: bytes.length,
    ranges: true,
    validators: {
      etag: etag ? `"${etag.replace(/"/g, '')}-${expires}"` : null,
      lastModified: lastModified ?? null,
    },
    async read(range) {
      return range ? bytes.subarray(range.start, range.end + 1) : bytes
    },
  }
}

/** A local playlist: its segments get this route's signed URLs, relative as written. */
function playlistSignedHere(
  storage: Storage,
  fileUrls: FileUrlSigner,
  key: string,
  expires: number,
): Promise<Representation> {
  return signedPlaylist(storage, key, expires, (segment, uri) => {
    return `${uri}?${fileUrls.signUntil(segment, expires)}`
  })
}

/**
 * A remote storage's playlist: its segments get the storage's presigned URLs, absolute, made
 * anew on each request (other bytes each time), so without validators or ranges.
 */
async function playlistPresigned(
  storage: Storage,
  key: string,
  expires: number,
): Promise<Representation> {
  const file = await signedPlaylist(storage, key, expires, (segment) => {
    return storage.url(segment, { expiresInSec: secondsUntil(expires) })
  })
  return { ...file, validators: { etag: null, lastModified: null }, ranges: false }
}

/** Whole seconds from now until `expires` (seconds since the epoch), at least one. */
function secondsUntil(expires: number): number {
  return Math.max(1, Math.floor(expires - Date.now() / 1000))
}
