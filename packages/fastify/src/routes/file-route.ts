import { Type } from '@sinclair/typebox'
import { parseRange } from '../http/byte-range.ts'
import { contentDisposition, isInlineType } from '../http/content-disposition.ts'
import { NotFoundError, RangeNotSatisfiableError, toHttpError } from '../http-errors.ts'
import type { ResolvedOptions } from '../plugin-options.ts'
import { errorResponses } from '../schemas.ts'
import type { TypedInstance } from '../transcodekit-plugin.ts'

/** Serves objects of a local storage, as `storage.url()` points at them. */
export function registerFileRoute(app: TypedInstance, { service }: ResolvedOptions): void {
  const storage = service.storage
  app.get(
    '/files/*',
    {
      schema: {
        operationId: 'getFile',
        tags: ['transcodekit'],
        summary: 'Read a stored file (local storage), whole or a byte range',
        description:
          'Supports `Range: bytes=…` (one range; 206, or 416 when it starts past the end). ' +
          'Media types are served `inline`, anything else as an `attachment`, always with ' +
          '`X-Content-Type-Options: nosniff`.',
        params: Type.Object({ '*': Type.String({ maxLength: 1024 }) }),
        querystring: Type.Object({
          download: Type.Optional(
            Type.String({
              maxLength: 255,
              description: 'Send as an attachment under this file name',
            }),
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
          304: Type.Null({ description: 'Not modified (If-None-Match)' }),
          ...errorResponses(404, 416),
        },
      },
    },
    async (request, reply) => {
      const key = request.params['*']
      const info = await storage.head(key)
      if (!info) throw NotFoundError(`file ${JSON.stringify(key)} was not found`)
      const contentType = info.contentType ?? 'application/octet-stream'
      const etag = info.etag ? `"${info.etag.replace(/"/g, '')}"` : null
      reply
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', "default-src 'none'; sandbox")
        .header('accept-ranges', 'bytes')
        .header('cache-control', 'private, max-age=3600')
      if (etag) reply.header('etag', etag)
      if (info.lastModified) reply.header('last-modified', info.lastModified.toUTCString())
      if (etag && request.headers['if-none-match'] === etag) return reply.status(304).send(null)

      const range = parseRange(request.headers.range, info.size)
      if (range === 'unsatisfiable') {
        const answer = toHttpError(
          RangeNotSatisfiableError(`the range is outside the file's ${info.size} bytes`),
        )
        return reply.status(416).header('content-range', `bytes */${info.size}`).send(answer)
      }
      const download = request.query.download
      const name = download ?? key.slice(key.lastIndexOf('/') + 1)
      const inline = download === undefined && isInlineType(contentType)
      const controller = new AbortController()
      reply.raw.once('close', () => controller.abort())
      const { body } = await storage.get(key, {
        range: range ?? undefined,
        signal: controller.signal,
      })
      reply
        .header('content-type', contentType)
        .header('content-disposition', contentDisposition(inline ? 'inline' : 'attachment', name))
      if (range) {
        reply
          .status(206)
          .header('content-range', `bytes ${range.start}-${range.end}/${info.size}`)
          .header('content-length', range.end - range.start + 1)
      } else {
        reply.status(200).header('content-length', info.size)
      }
      // The schema documents the bytes; the body is the storage's stream.
      return reply.send(body as unknown as string)
    },
  )
}
