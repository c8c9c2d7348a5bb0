import { randomUUID } from 'node:crypto'
import {
  type BigIntStats,
  constants,
  createWriteStream,
  mkdirSync,
  realpathSync,
  type WriteStream,
} from 'node:fs'
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  open,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises'
import { dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { addAbortSignal, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import {
  AbortedError,
  ConfigurationError,
  InvalidKeyError,
  InvalidRequestError,
  NotFoundError,
  outOfSpace,
} from '../errors.ts'
import { type KeyRule, keyChecks } from '../keys.ts'
import { processTag, watchLeftovers } from '../leftovers/leftover-sweeper.ts'
import type {
  GetOptions,
  GetResult,
  ObjectInfo,
  PutOptions,
  PutResult,
  Storage,
} from '../ports/storage.ts'

export interface LocalStorageOptions {
  /** Folder the objects live in; created on first use. */
  root: string
  /**
   * Prefix of the URLs `url()` returns: where the web layer serves these files.
   * @default '/files/'
   */
  baseUrl?: string
  /**
   * The keys it takes: `storage` (the server's own, strict keys) or `bucket` (any key S3 takes,
   * within what a folder can hold safely: see `assertValidBucketKey`), for a folder of a
   * client's objects under the names the client chose.
   * @default 'storage'
   */
  keyRule?: KeyRule
}

interface ResolvedOptions {
  root: string
  baseUrl: string
  keyRule: KeyRule
}

/**
 * Folders and files only the server's user may read: one storage holds every owner's media,
 * and another local user must not. (A rename keeps a file's mode:
 * a file moved in is made private too.)
 */
const PRIVATE_DIR = { recursive: true, mode: 0o700 } as const
const PRIVATE_FILE = 0o600

// Both folder names start with a dot, which no key segment may (see `assertValidKey`), so
// neither can ever collide with an object; bucket keys, which may, are refused these two.
const TEMP_DIR = '.tmp'
const META_DIR = '.meta'
// A file name's limit on common filesystems (255 bytes), less the `.json` of a sidecar.
const MAX_NAME_BYTES = 250

// Everything in the temp folder is an in-flight write of some process.
const ANY_NAME = /(?:)/

const CONTENT_TYPES: Record<string, string> = {
  aac: 'audio/aac',
  flac: 'audio/flac',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  json: 'application/json',
  m3u8: 'application/vnd.apple.mpegurl',
  m4a: 'audio/mp4',
  mkv: 'video/x-matroska',
  mov: 'video/quicktime',
  mp3: 'audio/mpeg',
  mp4: 'video/mp4',
  oga: 'audio/ogg',
  ogg: 'audio/ogg',
  opus: 'audio/ogg',
  png: 'image/png',
  ts: 'video/mp2t',
  txt: 'text/plain',
  wav: 'audio/wav',
  webm: 'video/webm',
}

function resolveOptions(options: LocalStorageOptions): ResolvedOptions {
  if (typeof options?.root !== 'string' || options.root.length === 0) {
    throw new ConfigurationError('localStorage: option "root" must be a non-empty path')
  }
  const baseUrl = options.baseUrl ?? '/files/'
  if (typeof baseUrl !== 'string') {
    throw new ConfigurationError('localStorage: option "baseUrl" must be a string')
  }
  const keyRule = options.keyRule ?? 'storage'
  if (keyRule !== 'storage' && keyRule !== 'bucket') {
    throw new ConfigurationError('localStorage: option "keyRule" must be "storage" or "bucket"')
  }
  return {
    root: resolve(options.root),
    baseUrl: baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`,
    keyRule,
  }
}

/**
 * Objects as files under a root folder. Writes go to `<root>/.tmp` and are renamed into
 * place, so a reader never sees a partial file. A content type given to `put` is kept in a
 * sidecar under `<root>/.meta`; without one, it is inferred from the key's extension.
 */
export class LocalStorage implements Storage {
  readonly root: string
  readonly baseUrl: string
  readonly #keys: ReturnType<typeof keyChecks>
  #realRoot: string | null = null
  readonly #swept: Promise<unknown>

  constructor(options: LocalStorageOptions) {
    const resolved = resolveOptions(options)
    this.root = resolved.root
    this.baseUrl = resolved.baseUrl
    this.#keys = folderKeyChecks(resolved.keyRule)
    // Writes of processes that died mid-write: at start, then now and then.
    this.#swept = watchLeftovers(join(this.root, TEMP_DIR), { untagged: ANY_NAME })
  }

  async put(
    key: string,
    body: Readable | AsyncIterable<Uint8Array>,
    options: PutOptions = {},
  ): Promise<PutResult> {
    const target = this.#path(key)
    const temp = await this.#tempPath()
    let file: WriteStream | null = null
    try {
      options.signal?.throwIfAborted()
      file = createWriteStream(temp, { flags: 'wx', mode: PRIVATE_FILE })
      await pipeline(body, file, { signal: options.signal })
      return await this.#commit(key, target, temp, options.contentType)
    } catch (error) {
      // The file may still be opening or closing: remove it only once it is closed.
      if (file && !file.closed) await new Promise<void>((done) => file?.once('close', () => done()))
      await rm(temp, { force: true })
      if (options.signal?.aborted)
        throw new AbortedError('the upload was aborted', { cause: error })
      throw outOfSpace(error, `object ${JSON.stringify(key)}`) ?? error
    }
  }

  async putFile(key: string, path: string, options: PutOptions = {}): Promise<PutResult> {
    const target = this.#path(key)
    const temp = await this.#tempPath()
    let copied = false
    try {
      options.signal?.throwIfAborted()
      try {
        await rename(path, temp)
      } catch (error) {
        if (errorCode(error) !== 'EXDEV') throw error
        // Another filesystem: copy next to the target so that the final step is still a rename.
        await copyFile(path, temp, constants.COPYFILE_EXCL)
        copied = true
      }
      await chmod(temp, PRIVATE_FILE)
      options.signal?.throwIfAborted()
      const result = await this.#commit(key, target, temp, options.contentType)
      if (copied) await rm(path, { force: true })
      return result
    } catch (error) {
      await rm(temp, { force: true })
      if (options.signal?.aborted)
        throw new AbortedError('the upload was aborted', { cause: error })
      throw outOfSpace(error, `object ${JSON.stringify(key)}`) ?? error
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    const path = this.#path(key)
    options.signal?.throwIfAborted()
    let handle: Awaited<ReturnType<typeof open>>
    try {
      // O_NOFOLLOW: the file checked by `#path` cannot be swapped for a symbolic link.
      handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW)
    } catch (error) {
      throw this.#openError(key, error)
    }
    try {
      const stats = await handle.stat({ bigint: true })
      if (!stats.isFile()) throw new NotFoundError('object', key)
      const size = Number(stats.size)
      let range: GetResult['range'] = null
      if (options.range) {
        const { start, end } = options.range
        if (!Number.isSafeInteger(start) || start < 0 || start >= size) {
          throw new InvalidRequestError(
            'INVALID_RANGE',
            `range start ${start} is outside the object (size ${size})`,
          )
        }
        if (end !== undefined && (!Number.isSafeInteger(end) || end < start)) {
          throw new InvalidRequestError(
            'INVALID_RANGE',
            `range end ${end} is before its start ${start}`,
          )
        }
        range = { start, end: Math.min(end ?? size - 1, size - 1) }
      }
      const info = await this.#info(key, stats)
      const body = handle.createReadStream(range ? { start: range.start, end: range.end } : {})
      if (options.signal) addAbortSignal(options.signal, body)
      return { ...info, body, range }
    } catch (error) {
      await handle.close()
      throw error
    }
  }

  async head(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | null> {
    const path = this.#path(key)
    options.signal?.throwIfAborted()
    let stats: BigIntStats
    try {
      stats = await lstat(path, { bigint: true })
    } catch (error) {
      if (isMissing(error)) return null
      throw error
    }
    if (stats.isSymbolicLink()) throw symlinkError(key)
    if (!stats.isFile()) return null
    return this.#info(key, stats)
  }

  async delete(key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    const path = this.#path(key)
    options.signal?.throwIfAborted()
    try {
      const stats = await lstat(path)
      if (stats.isDirectory()) return
      await unlink(path)
    } catch (error) {
      if (!isMissing(error)) throw error
    }
    await rm(this.#metaPath(key), { force: true })
  }

  async deletePrefix(prefix: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    if (typeof prefix !== 'string' || prefix === '') {
      throw new InvalidKeyError('deletePrefix needs a non-empty prefix ending with "/"')
    }
    this.#keys.prefix(prefix)
    const key = prefix.slice(0, -1)
    const path = this.#path(key)
    options.signal?.throwIfAborted()
    // Only a folder: the object named like the prefix without its slash is not under it.
    for (const folder of [path, join(this.root, META_DIR, ...key.split('/'))]) {
      try {
        if ((await lstat(folder)).isDirectory()) await rm(folder, { recursive: true, force: true })
      } catch (error) {
        if (!isMissing(error)) throw error
      }
    }
  }

  async url(key: string): Promise<string> {
    this.#keys.key(key)
    return this.baseUrl + key.split('/').map(encodeURIComponent).join('/')
  }

  /** The file of `key` (which may not exist yet). Refuses keys that resolve outside the root. */
  localPath(key: string): string {
    return this.#path(key)
  }

  /**
   * Resolves a key to its file and makes sure it stays inside the root, also through
   * symbolic links: the nearest existing ancestor (or the file itself) must resolve inside.
   */
  #path(key: string): string {
    this.#keys.key(key)
    const path = resolve(this.root, ...key.split('/'))
    if (!isInside(this.root, path) || path === this.root) {
      throw new InvalidKeyError(`storage key ${JSON.stringify(key)} resolves outside the root`)
    }
    const realRoot = this.#ensureRoot()
    let current = path
    for (;;) {
      let real: string
      try {
        real = realpathSync.native(current)
      } catch (error) {
        if (!isMissing(error)) throw error
        const parent = dirname(current)
        if (parent === current) break
        current = parent
        continue
      }
      if (!isInside(realRoot, real)) {
        throw new InvalidKeyError(`storage key ${JSON.stringify(key)} resolves outside the root`)
      }
      break
    }
    return path
  }

  #ensureRoot(): string {
    if (this.#realRoot === null) {
      mkdirSync(this.root, PRIVATE_DIR)
      this.#realRoot = realpathSync.native(this.root)
    }
    return this.#realRoot
  }

  async #tempPath(): Promise<string> {
    const folder = join(this.root, TEMP_DIR)
    await mkdir(folder, PRIVATE_DIR)
    await this.#swept
    return join(folder, `${processTag()}-${randomUUID()}`)
  }

  #metaPath(key: string): string {
    return `${join(this.root, META_DIR, ...key.split('/'))}.json`
  }

  /** Moves a complete temp file into place, with its content type recorded first. */
  async #commit(
    key: string,
    target: string,
    temp: string,
    contentType: string | undefined,
  ): Promise<PutResult> {
    const stats = await stat(temp, { bigint: true })
    await mkdir(dirname(target), PRIVATE_DIR)
    const meta = this.#metaPath(key)
    if (contentType) {
      // The sidecar names the file it describes (inode, size, mtime), so it never applies to
      // another file that takes this name later.
      const metaTemp = await this.#tempPath()
      try {
        await writeFile(metaTemp, JSON.stringify({ contentType, etag: etagOf(stats) }), {
          flag: 'wx',
          mode: PRIVATE_FILE,
        })
        await mkdir(dirname(meta), PRIVATE_DIR)
        await rename(metaTemp, meta)
      } catch (error) {
        await rm(metaTemp, { force: true })
        throw error
      }
    } else {
      await rm(meta, { force: true })
    }
    try {
      await rename(temp, target)
    } catch (error) {
      const code = errorCode(error)
      if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'ENOTDIR' || code === 'EEXIST') {
        throw new InvalidKeyError(`storage key ${JSON.stringify(key)} collides with a folder`)
      }
      throw error
    }
    return { size: Number(stats.size), etag: etagOf(stats) }
  }

  async #info(key: string, stats: BigIntStats): Promise<ObjectInfo> {
    return {
      size: Number(stats.size),
      contentType: (await this.#storedType(key, etagOf(stats))) ?? typeFromKey(key),
      etag: etagOf(stats),
      lastModified: new Date(Number(stats.mtimeMs)),
    }
  }

  async #storedType(key: string, etag: string): Promise<string | null> {
    try {
      const meta = JSON.parse(await readFile(this.#metaPath(key), 'utf8')) as {
        contentType?: unknown
        etag?: unknown
      }
      if (meta.etag === etag && typeof meta.contentType === 'string') {
        return meta.contentType
      }
    } catch {}
    return null
  }

  #openError(key: string, error: unknown): Error {
    const code = errorCode(error)
    if (code === 'ELOOP') return symlinkError(key)
    if (isMissing(error) || code === 'EISDIR')
      return new NotFoundError('object', key, { cause: error })
    return error as Error
  }
}

/** Makes a `Storage` on the local disk. */
export function localStorage(options: LocalStorageOptions): LocalStorage {
  return new LocalStorage(options)
}

/**
 * The checks of `rule`, and for bucket keys what a folder adds: no name longer than a file name
 * may be, and never the temp or sidecar folder.
 */
function folderKeyChecks(rule: KeyRule): ReturnType<typeof keyChecks> {
  const checks = keyChecks(rule)
  if (rule === 'storage') return checks
  const key = (key: string) => {
    checks.key(key)
    const segments = key.split('/')
    if (segments[0] === TEMP_DIR || segments[0] === META_DIR) {
      throw new InvalidKeyError(`bucket key ${JSON.stringify(key)} names a reserved folder`)
    }
    if (segments.some((segment) => Buffer.byteLength(segment, 'utf8') > MAX_NAME_BYTES)) {
      throw new InvalidKeyError(
        `bucket key ${JSON.stringify(key)} has a segment over ${MAX_NAME_BYTES} bytes`,
      )
    }
  }
  return {
    key,
    prefix(prefix) {
      checks.prefix(prefix)
      if (prefix !== '') key(prefix.slice(0, -1))
    },
  }
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path)
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel))
}

function etagOf(stats: BigIntStats): string {
  return `"${stats.size.toString(16)}-${stats.mtimeNs.toString(16)}-${stats.ino.toString(16)}"`
}

function typeFromKey(key: string): string | null {
  return CONTENT_TYPES[extname(key).slice(1).toLowerCase()] ?? null
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | null)?.code
}

function isMissing(error: unknown): boolean {
  const code = errorCode(error)
  return code === 'ENOENT' || code === 'ENOTDIR'
}

function symlinkError(key: string): InvalidKeyError {
  return new InvalidKeyError(`storage key ${JSON.stringify(key)} names a symbolic link`)
}
