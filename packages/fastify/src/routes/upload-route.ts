import type { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import { type TSchema, Type } from '@sinclair/typebox'
import type { Asset, Job } from '@transcodekit/core'
import {
  AbortedError as CoreAbortedError,
  TooLargeError as CoreTooLargeError,
} from '@transcodekit/core'
import { authorize, ownerOf, reserveRoomForJob } from '../access-control.ts'
import {
  FieldTooLargeError,
  InvalidRequestError,
  MissingFileError,
  NotMultipartError,
  TooLargeError,
  TooManyPartsError,
  UploadTimeoutError,
} from '../http-errors.ts'
import type { ResolvedOptions } from '../plugin-options.ts'
import { errorResponses, ref, UploadResultSchema } from '../schemas.ts'
import type { TypedInstance } from '../typed-instance.ts'
import { ownedJobView } from './job-routes.ts'

const MAX_PRESETS = 20

/** The longest file name kept, in characters: what common file systems allow. */
const MAX_FILENAME = 255
/** C0 and C1 controls, and the bidi controls that make a name read as another extension. */
const CONTROL = /[\p{Cc}\u202a-\u202e\u2066-\u2069]/u

/**
 * The file part's name as stored and shown in every listing: refused when too long or when it
 * holds control characters, rather than altered into a name the client never sent.
 */
function checkedFilename(filename: string): string | null {
  if (filename === '') return null
  if ([...filename].length > MAX_FILENAME) {
    throw InvalidRequestError(`the file name has more than ${MAX_FILENAME} characters`)
  }
  if (CONTROL.test(filename)) {
    throw InvalidRequestError('the file name holds control characters')
  }
  return filename
}

/** `presets` values: ids or aliases, several per value when comma-separated. */
function splitPresets(value: string): string[] {
  return value
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '')
}

/**
 * The file part as the service reads it: fails with a `TooLargeError` as soon as the parser
 * cuts it at the size limit (instead of ending short after skipping the rest), so the service
 * removes what it spooled. The parser's stream itself is handed on, not wrapped in an async
 * iterator, so that its chunks reach the disk without promises made and collected per chunk.
 */
function failingOverLimit<T extends Readable & { truncated?: boolean }>(file: T, limit: number): T {
  const over = () => file.destroy(new CoreTooLargeError(limit))
  if (file.truncated) over()
  else file.once('limit', over)
  return file
}

/** The idle timeout's error, given to the file part to end its ingest. */
class IdleError extends Error {}

export function registerUploadRoute(app: TypedInstance, settings: ResolvedOptions): void {
  const { service, limits, prefix, uploadIdleTimeoutMs: idleMs, maxUploadBodyBytes } = settings
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
          ...errorResponses(400, 401, 403, 408, 409, 413, 415, 422, 429, 507),
        },
      },
      // A declared length no upload within the limits can have: refused before a byte of the
      // body is read, and the connection closed rather than read to its end.
      onRequest: async (request, reply) => {
        const declared = Number(request.headers['content-length'] ?? 0)
        if (declared > maxUploadBodyBytes) {
          reply.header('connection', 'close')
          throw TooLargeError(
            `the request body (${declared} bytes) is larger than an upload may be ` +
              `(${maxUploadBodyBytes} bytes: a file of at most ${limits.fileSize} bytes and the form around it)`,
          )
        }
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
      await authorize(settings, request, 'upload')
      const owner = ownerOf(request)
      const presets = splitPresets(request.query.presets ?? '')
      const idempotencyKey = request.headers['idempotency-key'] ?? null
      // A retried request (its key already has a job) makes no new job: never refused for room.
      const retried =
        idempotencyKey !== null &&
        (await service.repository.getJobByIdempotencyKey(idempotencyKey, owner)) !== null
      const release = retried
        ? () => {}
        : await reserveRoomForJob(settings, request, idempotencyKey)
      const controller = new AbortController()
      const onClose = () => {
        if (!request.raw.complete) controller.abort(new CoreAbortedError('the client went away'))
      }
      request.raw.once('close', onClose)
      const idle = idleTimer(request.raw, idleMs, app.server.timeout, controller)
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
          idle.file = part.file
          result = await service.ingestAndTranscode(failingOverLimit(part.file, limits.fileSize), {
            owner,
            filename: checkedFilename(part.filename),
            presets,
            idempotencyKey,
            signal: controller.signal,
            maxBytes: limits.fileSize,
          })
        }
      } catch (error) {
        // Refused after the file was taken in (a part after it): what this request made goes.
        if (result && result.asset.createdAt.getTime() >= started) {
          await service.deleteAsset(result.asset.id, { owner }).catch((cleanup: unknown) => {
            request.log.error(
              { assetId: result?.asset.id, err: cleanup },
              'transcodekit: could not remove the asset of a refused upload',
            )
          })
        }
        if (idle.fired) {
          throw UploadTimeoutError(`the upload sent nothing for ${idleMs} ms and was cut`)
        }
        throw error
      } finally {
        release()
        request.raw.removeListener('close', onClose)
        idle.clear()
      }
      if (!result) throw MissingFileError('the form has no file part')
      reply.status(201).header('location', `${prefix}/jobs/${result.job.id}`)
      return {
        asset: result.asset,
        job: await ownedJobView(settings, request, result.job),
      }
    },
  )
}

interface IdleTimer {
  /** The file part being read, which the timeout ends with an error. */
  file: { destroy(error?: Error): void } | null
  /** Whether the upload was cut for idling. */
  readonly fired: boolean
  /** Stops watching: the socket gets back the server's own timeout. */
  clear(): void
}

/**
 * Cuts an upload whose body sends nothing for `ms`: the socket's idle timer, so any byte
 * that arrives restarts it, but not while the server itself has stopped reading (the socket
 * is paused because storage is slower than the client). Once the body is complete, the
 * request is no longer the client's to stall and the timer goes.
 */
function idleTimer(
  raw: IncomingMessage,
  ms: number,
  serverTimeout: number,
  controller: AbortController,
): IdleTimer {
  const state: IdleTimer & { fired: boolean } = {
    file: null,
    fired: false,
    clear: () => {},
  }
  const socket = raw.socket
  // No socket to watch: off, or a request injected in memory (`app.inject`).
  if (
    ms === 0 ||
    typeof raw.setTimeout !== 'function' ||
    typeof socket?.setTimeout !== 'function'
  ) {
    return state
  }
  const onTimeout = () => {
    if (raw.complete || state.fired) return
    if (raw.readableFlowing === false) {
      socket.setTimeout(ms)
      return
    }
    state.fired = true
    const error = new IdleError(`no byte of the upload arrived for ${ms} ms`)
    controller.abort(error)
    // With a file part being read, its ingest ends and the route answers 408 with
    // `connection: close`. Between parts there is nothing to end: the connection goes now.
    if (state.file) state.file.destroy(error)
    else socket.destroy()
    // A client that does not read the answer loses the connection anyway, soon.
    setTimeout(() => socket.destroy(), Math.min(ms, 5000)).unref()
  }
  const clear = () => {
    raw.removeListener('timeout', onTimeout)
    raw.removeListener('end', clear)
    if (!state.fired && !socket.destroyed) socket.setTimeout(serverTimeout)
  }
  raw.setTimeout(ms, onTimeout)
  raw.once('end', clear)
  state.clear = clear
  return state
}
