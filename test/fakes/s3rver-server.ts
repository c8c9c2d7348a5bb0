import { createReadStream } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
// s3rver ships no types.
// @ts-expect-error
import S3rver from 's3rver'

interface FilesystemStore {
  deleteObject(bucket: string, key: string): Promise<void>
  getObject(
    bucket: string,
    key: string,
    options?: { start?: number; end?: number },
  ): Promise<{ content: Readable | null; range?: { start: number; end: number } } | null>
  getResourcePath(bucket: string, key: string, resource: string): string
}

/** One request as it crossed the wire to s3rver. */
export interface S3WireRequest {
  method: string
  path: string
  query: URLSearchParams
  /** A name for the S3 operation, as far as it can be told from method and query. */
  operation: string
}

export interface S3rverHandle {
  /** `http://127.0.0.1:<port>` */
  endpoint: string
  /** Where s3rver keeps buckets, objects and unfinished multipart uploads. */
  directory: string
  /** Every request received, in order. */
  requests: S3WireRequest[]
  /** Upload ids of multipart uploads that s3rver keeps on disk, unfinished. */
  pendingMultipartUploads(bucket: string): Promise<string[]>
  /** Keys of the objects of a bucket, as s3rver lists them (ListObjectsV2, every page). */
  listKeys(bucket: string, prefix?: string): Promise<string[]>
  /** Answers the next `times` requests of `operation` with a 500 InternalError. */
  failNext(operation: string, times?: number): void
  /** Reads an object over plain HTTP (s3rver does not check signatures). */
  getObject(bucket: string, key: string): Promise<Buffer | null>
  close(): Promise<void>
}

function operationOf(method: string, path: string, query: URLSearchParams): string {
  const isObject = path.split('/').filter(Boolean).length > 1
  if (method === 'POST' && query.has('uploads')) return 'CreateMultipartUpload'
  if (method === 'PUT' && query.has('uploadId')) return 'UploadPart'
  if (method === 'POST' && query.has('uploadId')) return 'CompleteMultipartUpload'
  if (method === 'DELETE' && query.has('uploadId')) return 'AbortMultipartUpload'
  if (method === 'POST' && query.has('delete')) return 'DeleteObjects'
  if (method === 'GET' && !isObject) return 'ListObjects'
  if (method === 'PUT' && isObject) return 'PutObject'
  if (method === 'GET' && isObject) return 'GetObject'
  if (method === 'HEAD' && isObject) return 'HeadObject'
  if (method === 'DELETE' && isObject) return 'DeleteObject'
  return `${method} ${path}`
}

/**
 * Starts s3rver on 127.0.0.1 (random port) behind a thin recorder. s3rver 3.7 has no
 * `AbortMultipartUpload` (it answers 405 and keeps the parts on disk): the recorder implements
 * it the way S3 does, by dropping the upload's parts (204), so the code under test can be
 * judged on what it sends and on what is left on disk.
 */
export async function startS3rver(options: { buckets: string[] }): Promise<S3rverHandle> {
  const directory = await mkdtemp(join(tmpdir(), 'tk-s3rver-'))
  const s3rver = new S3rver({
    directory,
    silent: true,
    configureBuckets: options.buckets.map((name) => ({ name })),
  })
  await s3rver.configureBuckets()
  // s3rver's DeleteObjects deletes its keys in parallel, and each delete removes directories
  // it finds empty: two keys of one folder race and one fails with InternalError. Deleting
  // one object at a time keeps what S3 does (the same objects go) without the race.
  const store = s3rver.store as FilesystemStore
  const deleteObject = store.deleteObject.bind(store)
  let deleting: Promise<unknown> = Promise.resolve()
  store.deleteObject = (bucket, key) => {
    const next = deleting.then(() => deleteObject(bucket, key))
    deleting = next.catch(() => {})
    return next
  }
  // s3rver reads `Range: bytes=0-0` as "to the end" (`end || Infinity`); S3 serves one byte.
  const getObject = store.getObject.bind(store)
  store.getObject = async (bucket, key, options) => {
    if (options?.end !== 0) return getObject(bucket, key, options)
    const object = await getObject(bucket, key, { start: 0, end: 1 })
    if (!object?.content) return object
    object.content.destroy()
    object.content = createReadStream(store.getResourcePath(bucket, key, 'object'), {
      start: 0,
      end: 0,
    })
    object.range = { start: 0, end: 0 }
    return object
  }
  const handler = s3rver.callback()
  const requests: S3WireRequest[] = []
  const faults = new Map<string, number>()
  const uploadsDir = (bucket: string) => join(directory, bucket, '._S3rver_uploads')
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://s3rver')
    const method = req.method ?? 'GET'
    const operation = operationOf(method, url.pathname, url.searchParams)
    requests.push({
      method,
      path: decodeURIComponent(url.pathname),
      query: url.searchParams,
      operation,
    })
    const failing = faults.get(operation) ?? 0
    if (failing > 0) {
      faults.set(operation, failing - 1)
      req.resume()
      res.writeHead(500, { 'content-type': 'application/xml' })
      res.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>',
      )
      return
    }
    if (operation === 'AbortMultipartUpload') {
      const bucket = url.pathname.split('/')[1] ?? ''
      const uploadId = url.searchParams.get('uploadId') ?? ''
      if (!/^[A-Za-z0-9._-]+$/.test(uploadId) || !/^[a-z0-9.-]+$/.test(bucket)) {
        res.writeHead(400).end()
        return
      }
      req.resume()
      rm(join(uploadsDir(bucket), uploadId), { recursive: true, force: true }).then(
        () => res.writeHead(204).end(),
        () => res.writeHead(500).end(),
      )
      return
    }
    if (operation === 'ListObjects' && url.searchParams.get('list-type') === '2') {
      req.resume()
      listObjectsV2(url).then(
        ({ status, body }) =>
          res.writeHead(status, { 'content-type': 'application/xml' }).end(body),
        () => res.writeHead(500).end(),
      )
      return
    }
    handler(req, res)
  })
  // s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3 (Node ≥ 17)
  // refuses: every truncated listing fails with InternalError. The recorder pages instead:
  // it asks s3rver (on an inner port) for everything after the token's key and cuts the page
  // to `max-keys`, with a token of its own. Listings without a delimiter only.
  const inner: Server = createServer(handler)
  await new Promise<void>((resolve) => inner.listen(0, '127.0.0.1', resolve))
  const innerEndpoint = `http://127.0.0.1:${(inner.address() as AddressInfo).port}`
  async function listObjectsV2(url: URL): Promise<{ status: number; body: string }> {
    const query = new URLSearchParams(url.searchParams)
    const maxKeys = Math.min(1000, Number(query.get('max-keys') ?? 1000))
    const token = query.get('continuation-token')
    query.delete('max-keys')
    query.delete('continuation-token')
    if (token) query.set('start-after', Buffer.from(token, 'base64url').toString('utf8'))
    const response = await fetch(`${innerEndpoint}${url.pathname}?${query}`)
    let xml = await response.text()
    if (!response.ok) return { status: response.status, body: xml }
    const contents = [...xml.matchAll(/<Contents>[\s\S]*?<\/Contents>/g)].map((m) => m[0])
    if (contents.length > maxKeys) {
      const kept = contents.slice(0, maxKeys)
      const lastKey = unescapeXml(/<Key>([^<]*)<\/Key>/.exec(kept.at(-1) ?? '')?.[1] ?? '')
      const next = Buffer.from(lastKey, 'utf8').toString('base64url')
      xml = xml
        .replace(/<Contents>[\s\S]*<\/Contents>/, kept.join(''))
        .replace(
          '<IsTruncated>false</IsTruncated>',
          `<IsTruncated>true</IsTruncated><NextContinuationToken>${next}</NextContinuationToken>`,
        )
    }
    xml = xml
      .replace(
        /<KeyCount>\d+<\/KeyCount>/,
        `<KeyCount>${Math.min(contents.length, maxKeys)}</KeyCount>`,
      )
      .replace(/<MaxKeys>\d+<\/MaxKeys>/, `<MaxKeys>${maxKeys}</MaxKeys>`)
    return { status: 200, body: xml }
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const endpoint = `http://127.0.0.1:${port}`

  return {
    endpoint,
    directory,
    requests,
    async pendingMultipartUploads(bucket) {
      try {
        return await readdir(uploadsDir(bucket))
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
        throw error
      }
    },
    async listKeys(bucket, prefix = '') {
      const keys: string[] = []
      let token: string | null = null
      do {
        const query = new URLSearchParams({ 'list-type': '2', prefix })
        if (token) query.set('continuation-token', token)
        const xml = await (await fetch(`${endpoint}/${bucket}?${query}`)).text()
        for (const match of xml.matchAll(/<Key>([^<]*)<\/Key>/g))
          keys.push(unescapeXml(match[1] ?? ''))
        token = /<IsTruncated>true<\/IsTruncated>/.test(xml)
          ? (/<NextContinuationToken>([^<]*)</.exec(xml)?.[1] ?? null)
          : null
      } while (token)
      return keys
    },
    failNext(operation, times = 1) {
      faults.set(operation, times)
    },
    async getObject(bucket, key) {
      const response = await fetch(
        `${endpoint}/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`,
      )
      if (response.status === 404) return null
      if (!response.ok) throw new Error(`s3rver GET ${key}: ${response.status}`)
      return Buffer.from(await response.arrayBuffer())
    },
    async close() {
      for (const each of [server, inner]) {
        each.closeAllConnections()
        await new Promise<void>((resolve) => each.close(() => resolve()))
      }
      await rm(directory, { recursive: true, force: true })
    },
  }
}

function unescapeXml(value: string): string {
  return value
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&')
}
