import type { Readable } from 'node:stream'

export interface PutOptions {
  contentType?: string
  signal?: AbortSignal
}

export interface PutResult {
  /** Bytes written. */
  size: number
  etag: string | null
}

export interface ObjectInfo {
  size: number
  contentType: string | null
  etag: string | null
  lastModified: Date | null
}

export interface ByteRange {
  /** First byte, inclusive. */
  start: number
  /** Last byte, inclusive; omitted: to the end. */
  end?: number
}

export interface GetOptions {
  range?: ByteRange
  signal?: AbortSignal
}

export interface GetResult extends ObjectInfo {
  body: Readable
  /** The range served, when one was asked for; `size` is always the whole object's size. */
  range: { start: number; end: number } | null
}

/**
 * Where originals and outputs live. Keys are `/`-separated, made by the server (see
 * `outputKey`), never by a client. Every method rejects a key that is empty, absolute,
 * contains `..`, a NUL or a backslash with an `InvalidKeyError`.
 *
 * @example
 * const storage = localStorage({ root: './data/files' })
 * const { size } = await storage.put('originals/123/original', fs.createReadStream(path))
 * const { body } = await storage.get('originals/123/original', { range: { start: 0, end: 99 } })
 */
export interface Storage {
  /**
   * Streams `body` under `key`. The object becomes visible only once complete: a failed or
   * aborted put leaves nothing behind (no partial object, no pending multipart upload).
   * Overwrites an existing object.
   */
  put(
    key: string,
    body: Readable | AsyncIterable<Uint8Array>,
    options?: PutOptions,
  ): Promise<PutResult>

  /** Reads an object, or a byte range of it. Throws `NotFoundError` when absent. */
  get(key: string, options?: GetOptions): Promise<GetResult>

  /** Size and type of an object, or `null` when absent. */
  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo | null>

  /** Removes an object; removing an absent object is not an error. */
  delete(key: string, options?: { signal?: AbortSignal }): Promise<void>

  /** Removes every object whose key starts with `prefix` (which must end with `/`). */
  deletePrefix(prefix: string, options?: { signal?: AbortSignal }): Promise<void>

  /**
   * A URL a client can read the object from: presigned for S3, a route of the web layer
   * for local storage.
   */
  url(key: string, options?: { expiresInSec?: number; filename?: string }): Promise<string>

  /**
   * Optional capability: a path on this machine where the object can be read directly,
   * so a local engine does not copy it first. Absent for remote storage.
   */
  localPath?(key: string): string

  /**
   * Optional capability: moves a local file (which the storage now owns) under `key`,
   * cheaper than `put` when the file is on the same machine (a rename for local storage).
   */
  putFile?(key: string, path: string, options?: PutOptions): Promise<PutResult>

  /** Optional: release what the storage created (never what the caller passed in). */
  close?(): Promise<void>
}
