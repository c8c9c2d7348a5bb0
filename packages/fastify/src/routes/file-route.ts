import type { Readable } from 'node:stream'
import { text } from 'node:stream/consumers'
import { Type } from '@sinclair/typebox'
import type { ObjectInfo, Storage } from '@transcodekit/core'
import { parseRange } from '../http/byte-range.ts'
import { ifRangeHolds, isNotModified, type Validators } from '../http/conditional-request.ts'
import { contentDisposition, isInlineType } from '../http/content-disposition.ts'
import type { FileUrlSigner } from '../http/file-url-signer.ts'
import { isHlsPlaylist, signSegmentUris } from '../http/hls-playlist.ts'
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
 * The largest playlist the route signs in memory: 10-second segments take about 40 bytes a
 * line pair, so this is some 2,000 hours of media (200 hours at 1-second segments).
 */
const MAX_PLAYLIST_BYTES = 8 * 1024 * 1024

/** What the route sends for a key: the stored object, or a playlist signed in memory. */
interface Representation {
  size: number
  validators: Validators
  read(
    range: { start: number; end: number } | null,
    signal: AbortSignal,
  ): Promise<Readable | Buffer>
}

/**
 * Serves objects of a local storage at the signed URLs the API hands out (`fileUrls`): the
 * signature is this route's authorization, as a presigned URL is S3's.
 */
export function registerFileRoute(
  app: TypedInstance,
  { service, fileUrls }: ResolvedOptions,
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
          'needs nothing but the playlist URL.',
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
      const info = await storage.head(key)
      if (!info) throw NotFoundError(`file ${JSON.stringify(key)} was not found`)
      const contentType = info.contentType ?? 'application/octet-stream'
      const file = isHlsPlaylist(contentType)
        ? await signedPlaylist(storage, fileUrls, key, expires)
        : storedObject(storage, key, info)
      const { validators } = file
      const maxAge = Math.max(0, Math.min(MAX_AGE_SEC, Math.floor(expires - Date.now() / 1000)))
      reply
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', "default-src 'none'; sandbox")
        .header('accept-ranges', 'bytes')
        .header('cache-control', `private, max-age=${maxAge}`)
      if (validators.etag) reply.header('etag', validators.etag)
      if (validators.lastModified) {
        reply.header('last-modified', validators.lastModified.toUTCString())
      }
      if (isNotModified(request.headers, validators)) return reply.status(304).send(null)

      // Range is defined for GET only (RFC 9110 §14.2), and If-Range may void it.
      const range =
        request.method === 'GET' && ifRangeHolds(request.headers['if-range'], validators)
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
    size: info.size,
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
 * the signature still covers exactly one key each, so holding the playlist opens its
 * segments and nothing else. The same stored playlist and expiry always give the same bytes,
 * so the stored ETag with the expiry is a strong validator of them.
 */
async function signedPlaylist(
  storage: Storage,
  fileUrls: FileUrlSigner,
  key: string,
  expires: number,
): Promise<Representation> {
  const { body, size, etag, lastModified } = await storage.get(key)
  if (size > MAX_PLAYLIST_BYTES) {
    body.destroy()
    throw InternalError(
      `the playlist ${JSON.stringify(key)} is ${size} bytes, more than the ${MAX_PLAYLIST_BYTES} this server signs`,
    )
  }
  const playlist = signSegmentUris(await text(body), key, (segment) =>
    fileUrls.signUntil(segment, expires),
  )
  const bytes = Buffer.from(playlist)
  return {
    size: bytes.length,
    validators: {
      etag: etag ? `"${etag.replace(/"/g, '')}-${expires}"` : null,
      lastModified: lastModified ?? null,
    },
    async read(range) {
      return range ? bytes.subarray(range.start, range.end + 1) : bytes
    },
  }
}
