import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import { type TSchema, Type } from '@sinclair/typebox'
import type { Asset, Job } from '@transcodekit/core'
import {
  AbortedError as CoreAbortedError,
  TooLargeError as CoreTooLargeError,
} from '@transcodekit/core'
import {
  FieldTooLargeError,
  InvalidRequestError,
  MissingFileError,
  NotMultipartError,
  TooManyPartsError,
} from '../http-errors.ts'
import { jobView } from '../job-view.ts'
import type { ResolvedOptions } from '../plugin-options.ts'
import { errorResponses, ref, UploadResultSchema } from '../schemas.ts'
import type { TypedInstance } from '../transcodekit-plugin.ts'

const MAX_PRESETS = 20

/** `presets` values: ids or aliases, several per value when comma-separated. */
function splitPresets(value: string): string[] {
  return value
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '')
}

/**
 * The file part as the service reads it: ends with an error, never silently, when the parser
 * cut it at the size limit, so the service removes what it spooled.
 */
async function* untruncated(
  file: NodeJS.ReadableStream & { truncated?: boolean; destroy(error?: Error): void },
  limit: number,
): AsyncGenerator<Uint8Array> {
  // Fail as soon as the limit is crossed rather than after the parser skipped the rest.
  const onLimit = () => file.destroy(new CoreTooLargeError(limit))
  file.once('limit', onLimit)
  try {
    for await (const chunk of file) yield chunk as Uint8Array
    if (file.truncated) throw new CoreTooLargeError(limit)
  } finally {
    file.removeListener('limit', onLimit)
  }
}

export function registerUploadRoute(app: TypedInstance, settings: ResolvedOptions): void {
  const { service, limits, prefix } = settings
  app.post(
    '/uploads',
    {
      schema: {
        operationId: 'createUpload',
        tags: ['transcodekit'],
        summary: 'Upload a file and start transcoding it',
        description:
          'A `multipart/form-data` body with one file part. The `presets` field (preset ids or ' +
          'aliases; repeat the field or separate names with commas) must come BEFORE the file ' +
          'part: the file is streamed to storage as it arrives, so fields sent after it come ' +
          'too late and are refused. Presets may also be given in the `presets` query ' +
          'parameter. Without presets, the service defaults for the kind of input apply. With ' +
          'an `Idempotency-Key` header, a retried request answers with the same asset and job.',
        consumes: ['multipart/form-data'],
        querystring: Type.Object({
          presets: Type.Optional(
            Type.String({ maxLength: 1024, description: 'Comma-separated preset ids or aliases' }),
          ),
        }),
        headers: Type.Object({
          'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
        }),
        body: {
          content: {
            'multipart/form-data': {
              schema: Type.Object({
                presets: Type.Optional(
                  Type.Array(Type.String(), {
                    description: 'Preset ids or aliases, before the file',
                  }),
                ),
                file: Type.String({ format: 'binary', description: 'The media file' }),
              }),
            },
          },
        },
        response: {
          201: ref(UploadResultSchema),
          ...errorResponses(400, 409, 413, 415, 422),
        },
      },
      // The multipart body is read by the handler as a stream, not validated up front.
      validatorCompiler: ({ schema, httpPart }) => {
        if (httpPart === 'body') return () => true
        return TypeBoxValidatorCompiler({
          schema: schema as unknown as TSchema,
          httpPart,
          method: 'POST',
          url: '/uploads',
        })
      },
    },
    async (request, reply) => {
      if (!request.isMultipart()) {
        throw NotMultipartError('POST /uploads takes a multipart/form-data body')
      }
      const presets = splitPresets(request.query.presets ?? '')
      const idempotencyKey = request.headers['idempotency-key'] ?? null
      const controller = new AbortController()
      const onClose = () => {
        if (!request.raw.complete) controller.abort(new CoreAbortedError('the client went away'))
      }
      request.raw.once('close', onClose)
      const started = Date.now()
      let result: { asset: Asset; job: Job } | null = null
      try {
        for await (const part of request.parts({ limits })) {
          if (part.type === 'field') {
            if (part.fieldnameTruncated || part.valueTruncated) {
              throw FieldTooLargeError(`form field ${JSON.stringify(part.fieldname)} is too large`)
            }
            if (part.fieldname !== 'presets') continue
            if (result) {
              throw InvalidRequestError('the presets field must come before the file part')
            }
            presets.push(...splitPresets(String(part.value)))
            if (presets.length > MAX_PRESETS) {
              throw InvalidRequestError(`at most ${MAX_PRESETS} presets per upload`)
            }
            continue
          }
          if (result) throw TooManyPartsError('the form has more files than allowed (one)')
          result = await service.ingestAndTranscode(untruncated(part.file, limits.fileSize), {
            filename: part.filename || null,
            presets,
            idempotencyKey,
            signal: controller.signal,
            maxBytes: limits.fileSize,
          })
        }
      } catch (error) {
        // Refused after the file was taken in (a part after it): what this request made goes.
        if (result && result.asset.createdAt.getTime() >= started) {
          await service.deleteAsset(result.asset.id).catch(() => {})
        }
        throw error
      } finally {
        request.raw.removeListener('close', onClose)
      }
      if (!result) throw MissingFileError('the form has no file part')
      reply.status(201).header('location', `${prefix}/jobs/${result.job.id}`)
      return {
        asset: result.asset,
        job: await jobView(service, result.job, settings),
      }
    },
  )
}
