import { createReadStream, createWriteStream } from 'node:fs'
import { rename, rm, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { pathToFileURL } from 'node:url'
import {
  assertValidKey,
  type GetOptions,
  type GetResult,
  InvalidKeyError,
  NotFoundError,
  type ObjectInfo,
  type PutOptions,
  type PutResult,
  type Storage,
} from '@transcodekit/core'

/**
 * The storage of one `transcodekit transcode`: the input file read where it lies (the engine
 * gets its path, so nothing is copied) and outputs as plain files in the output folder, with
 * no sidecar or temp folder of a storage. Keys are single file names; `inputKey` names the input.
 */
export class OutputFolderStorage implements Storage {
  readonly inputKey = 'input'
  readonly #dir: string
  readonly #input: string

  constructor(options: { dir: string; input: string }) {
    this.#dir = resolve(options.dir)
    this.#input = resolve(options.input)
  }

  localPath(key: string): string {
    if (key === this.inputKey) return this.#input
    assertValidKey(key)
    if (key.includes('/')) throw new InvalidKeyError(`output key ${JSON.stringify(key)} has a /`)
    return join(this.#dir, key)
  }

  /** Moves a finished output into the folder: the engine's work folder is inside it, a rename. */
  async putFile(key: string, path: string, _options?: PutOptions): Promise<PutResult> {
    const target = this.#output(key)
    await rename(path, target)
    return { size: (await stat(target)).size, etag: null }
  }

  async put(
    key: string,
    body: NodeJS.ReadableStream | AsyncIterable<Uint8Array>,
    options: PutOptions = {},
  ): Promise<PutResult> {
    const target = this.#output(key)
    const partial = `${target}.partial`
    try {
      await pipeline(body, createWriteStream(partial, { flags: 'wx' }), {
        ...(options.signal ? { signal: options.signal } : {}),
      })
      await rename(partial, target)
    } catch (error) {
      await rm(partial, { force: true })
      throw error
    }
    return { size: (await stat(target)).size, etag: null }
  }

  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    const path = this.localPath(key)
    const info = await this.head(key)
    if (!info) throw new NotFoundError('object', key)
    const range = options.range
      ? { start: options.range.start, end: options.range.end ?? info.size - 1 }
      : null
    return {
      ...info,
      body: createReadStream(path, range ?? {}),
      range,
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const info = await stat(this.localPath(key)).catch(() => null)
    if (!info?.isFile()) return null
    return { size: info.size, contentType: null, etag: null, lastModified: info.mtime }
  }

  async delete(key: string): Promise<void> {
    await rm(this.#output(key), { force: true })
  }

  async deletePrefix(prefix: string): Promise<void> {
    throw new InvalidKeyError(`an output folder has no prefixes (${JSON.stringify(prefix)})`)
  }

  async url(key: string): Promise<string> {
    return pathToFileURL(this.localPath(key)).href
  }

  /** An output's path; the input is never written or removed through the storage. */
  #output(key: string): string {
    if (key === this.inputKey) throw new InvalidKeyError('the input is read-only')
    return this.localPath(key)
  }
}
