import assert from 'node:assert'
import { PassThrough, Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import {
  AbortedError,
  assertValidPrefix,
  type GetOptions,
  type GetResult,
  InvalidKeyError,
  InvalidRequestError,
  type KeyRule,
  keyChecks,
  NotFoundError,
  type ObjectInfo,
  type PutOptions,
  type PutResult,
  type Storage,
} from '@transcodekit/core'

export interface S3StorageOptions {
  /** The S3 client to use. It belongs to the caller: the storage never destroys it. */
  client: S3Client
  bucket: string
  /**
   * Prepended to every key (for several apps in one bucket); empty or ending with `/`.
   * @default ''
   */
  prefix?: string
  /** Size of each multipart part, in bytes (S3's minimum is 5 MiB). @default 8 MiB */
  partSize?: number
  /** Parts uploaded at once; memory use is about `partSize × (queueSize + 1)`. @default 4 */
  queueSize?: number
  /** Objects removed per `DeleteObjects` call and listed per page (at most 1000). @default 1000 */
  batchSize?: number
  /** Lifetime of presigned URLs when `url()` is not given one. @default 3600 */
  expiresInSec?: number
  /**
   * The keys it takes: `storage` (the server's own, strict keys) or `bucket` (any key S3 takes
   * but empty, `.` and `..` segments, control characters and backslashes: see
   * `assertValidBucketKey`), for a bucket of a client's objects under the names it chose.
   * @default 'storage'
   */
  keyRule?: KeyRule
}

interface ResolvedOptions {
  client: S3Client
  bucket: string
  prefix: string
  partSize: number
  queueSize: number
  batchSize: number
  expiresInSec: number
  keyRule: KeyRule
}

function resolveOptions(options: S3StorageOptions): ResolvedOptions {
  assert(options.client, 's3Storage: the `client` option is required')
  assert(
    typeof options.bucket === 'string' && options.bucket.length >= 3,
    's3Storage: the `bucket` option must be a bucket name',
  )
  const prefix = options.prefix ?? ''
  assertValidPrefix(prefix)
  const resolved: ResolvedOptions = {
    client: options.client,
    bucket: options.bucket,
    prefix,
    partSize: options.partSize ?? 8 * 1024 * 1024,
    queueSize: options.queueSize ?? 4,
    batchSize: options.batchSize ?? 1000,
    expiresInSec: options.expiresInSec ?? 3600,
    keyRule: options.keyRule ?? 'storage',
  }
  assert(
    resolved.keyRule === 'storage' || resolved.keyRule === 'bucket',
    's3Storage: `keyRule` must be "storage" or "bucket"',
  )
  assert(resolved.partSize >= 5 * 1024 * 1024, 's3Storage: `partSize` must be at least 5 MiB')
  assert(resolved.queueSize >= 1, 's3Storage: `queueSize` must be at least 1')
  assert(
    resolved.batchSize >= 1 && resolved.batchSize <= 1000,
    's3Storage: `batchSize` must be between 1 and 1000',
  )
  return resolved
}

function isNotFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } }
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404
}

function unquote(etag: string | undefined): string | null {
  return etag ? etag.replace(/^"|"$/g, '') : null
}

/** `bytes 0-99/1234` → the served range. */
function parseContentRange(value: string | undefined): { start: number; end: number } | null {
  const match = value ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value) : null
  if (!match) return null
  return { start: Number(match[1]), end: Number(match[2]) }
}

function wholeSize(contentRange: string | undefined, contentLength: number | undefined): number {
  const match = contentRange ? /\/(\d+)$/.exec(contentRange) : null
  return match ? Number(match[1]) : (contentLength ?? 0)
}

/** The `Storage` port on an S3 bucket (or any S3-compatible endpoint). */
export class S3Storage implements Storage {
  readonly #options: ResolvedOptions
  readonly #keys: ReturnType<typeof keyChecks>

  constructor(options: S3StorageOptions) {
    this.#options = resolveOptions(options)
    this.#keys = keyChecks(this.#options.keyRule)
  }

  get bucket(): string {
    return this.#options.bucket
  }

  /** What is put before every key in the bucket. */
  get prefix(): string {
    return this.#options.prefix
  }

  /** The object key in the bucket for a storage key (with the configured prefix). */
  objectKey(key: string): string {
    this.#keys.key(key)
    return this.#options.prefix + key
  }

  async put(
    key: string,
    body: Readable | AsyncIterable<Uint8Array>,
    options: PutOptions = {},
  ): Promise<PutResult> {
    const objectKey = this.objectKey(key)
    const { signal } = options
    if (signal?.aborted) throw new AbortedError('the upload was aborted', { cause: signal.reason })
    let size = 0
    const source = body instanceof Readable ? body : Readable.from(body)
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        size += chunk.length
        callback(null, chunk)
      },
    })
    // The Upload reads from a stream we own: on abort we destroy it, so the parts being fed
    // stop, lib-storage's uploaders fail and it sends AbortMultipartUpload before `done()`
    // settles. (Aborting through its own controller settles `done()` first and leaves the
    // abort racing behind us; a stalled source would never let it run at all.)
    const feed = new PassThrough()
    const piping = pipeline(source, counter, feed).catch((error: unknown) => {
      feed.destroy(error as Error)
    })
    const onAbort = () => {
      const reason = new AbortedError('the upload was aborted', { cause: signal?.reason })
      source.destroy(reason)
      feed.destroy(reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    const upload = new Upload({
      client: this.#options.client,
      params: {
        Bucket: this.#options.bucket,
        Key: objectKey,
        Body: feed,
        ContentType: options.contentType,
      },
      partSize: this.#options.partSize,
      queueSize: this.#options.queueSize,
      leavePartsOnError: false,
    })
    try {
      const result = await upload.done()
      await piping
      return { size, etag: unquote(result.ETag) }
    } catch (error) {
      if (signal?.aborted) {
        throw error instanceof AbortedError
          ? error
          : new AbortedError('the upload was aborted', { cause: error })
      }
      throw error
    } finally {
      signal?.removeEventListener('abort', onAbort)
      source.destroy()
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    const objectKey = this.objectKey(key)
    const { range } = options
    if (
      range &&
      (!Number.isInteger(range.start) ||
        range.start < 0 ||
        (range.end !== undefined && (!Number.isInteger(range.end) || range.end < range.start)))
    ) {
      throw new InvalidRequestError('INVALID_RANGE', `invalid byte range ${JSON.stringify(range)}`)
    }
    try {
      const result = await this.#options.client.send(
        new GetObjectCommand({
          Bucket: this.#options.bucket,
          Key: objectKey,
          Range: range ? `bytes=${range.start}-${range.end ?? ''}` : undefined,
        }),
        { abortSignal: options.signal },
      )
      const served = range ? parseContentRange(result.ContentRange) : null
      return {
        body: result.Body as Readable,
        size: wholeSize(result.ContentRange, result.ContentLength),
        contentType: result.ContentType ?? null,
        etag: unquote(result.ETag),
        lastModified: result.LastModified ?? null,
        range: range
          ? (served ?? { start: 0, end: Math.max(0, (result.ContentLength ?? 0) - 1) })
          : null,
      }
    } catch (error) {
      if (isNotFound(error)) throw new NotFoundError('object', key, { cause: error })
      if (
        (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode === 416
      ) {
        throw new InvalidRequestError(
          'INVALID_RANGE',
          `byte range ${range?.start}-${range?.end ?? ''} is outside object ${JSON.stringify(key)}`,
          { cause: error },
        )
      }
      throw error
    }
  }

  async head(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | null> {
    const objectKey = this.objectKey(key)
    try {
      const result = await this.#options.client.send(
        new HeadObjectCommand({ Bucket: this.#options.bucket, Key: objectKey }),
        { abortSignal: options.signal },
      )
      return {
        size: result.ContentLength ?? 0,
        contentType: result.ContentType ?? null,
        etag: unquote(result.ETag),
        lastModified: result.LastModified ?? null,
      }
    } catch (error) {
      if (isNotFound(error)) return null
      throw error
    }
  }

  async delete(key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    const objectKey = this.objectKey(key)
    try {
      await this.#options.client.send(
        new DeleteObjectCommand({ Bucket: this.#options.bucket, Key: objectKey }),
        { abortSignal: options.signal },
      )
    } catch (error) {
      if (!isNotFound(error)) throw error
    }
  }

  async deletePrefix(prefix: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#keys.prefix(prefix)
    // Refuse to empty a whole bucket through a prefix that names nothing.
    if (prefix === '') throw new InvalidKeyError('deletePrefix needs a non-empty prefix')
    const { client, bucket, batchSize } = this.#options
    let token: string | undefined
    do {
      const page = await client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: this.#options.prefix + prefix,
          ContinuationToken: token,
          MaxKeys: batchSize,
        }),
        { abortSignal: options.signal },
      )
      const keys = (page.Contents ?? []).flatMap((item) => (item.Key ? [{ Key: item.Key }] : []))
      if (keys.length > 0) {
        const result = await client.send(
          new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }),
          { abortSignal: options.signal },
        )
        const failed = result.Errors ?? []
        if (failed.length > 0) {
          throw new Error(
            `could not delete ${failed.length} object(s) under ${prefix}: ${failed[0]?.Code} ${failed[0]?.Message}`,
          )
        }
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined
    } while (token)
  }

  async url(
    key: string,
    options: { expiresInSec?: number; filename?: string } = {},
  ): Promise<string> {
    const objectKey = this.objectKey(key)
    const disposition =
      options.filename !== undefined ? contentDisposition(options.filename) : undefined
    return getSignedUrl(
      this.#options.client,
      new GetObjectCommand({
        Bucket: this.#options.bucket,
        Key: objectKey,
        ResponseContentDisposition: disposition,
      }),
      { expiresIn: options.expiresInSec ?? this.#options.expiresInSec },
    )
  }
}

/** `attachment` with an ASCII fallback and the UTF-8 name (RFC 6266 / 5987). */
export function contentDisposition(filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]|["\\%]/g, '_')
  const encoded = encodeURIComponent(filename).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  )
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`
}

/**
 * The `Storage` port on S3: streaming multipart uploads through `@aws-sdk/lib-storage`
 * (bounded memory), aborted on any failure so no parts stay behind; ranged reads; presigned
 * GET URLs.
 *
 * @example
 * const client = new S3Client({ region: 'eu-west-1' })
 * const storage = s3Storage({ client, bucket: 'media', prefix: 'transcodekit/' })
 */
export function s3Storage(options: S3StorageOptions): S3Storage {
  return new S3Storage(options)
}
