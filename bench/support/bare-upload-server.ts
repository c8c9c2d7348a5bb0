// The upload benchmark's baselines, run as a process of their own (as the server is):
//
//   node bench/support/bare-upload-server.ts pipe <folder>     bare Node http, the whole
//                                                               request body piped to a file
//   node bench/support/bare-upload-server.ts busboy <folder>   bare Node http + busboy: the
//                                                               file part to disk, sha256 of it
//
// Answers 201 with `{ path, size, sha256? }`; the benchmark removes the file. Prints
// `listening http://127.0.0.1:<port>/` once it listens.
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import busboy from 'busboy'

const [mode, folder] = process.argv.slice(2)
if ((mode !== 'pipe' && mode !== 'busboy') || !folder) {
  throw new Error('usage: bare-upload-server.ts pipe|busboy <folder>')
}
let count = 0

function answer(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

async function pipe(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = join(folder!, `pipe-${++count}`)
  const out = createWriteStream(path)
  await pipeline(req, out)
  answer(res, 201, { path, size: out.bytesWritten })
}

async function withBusboy(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const parser = busboy({ headers: req.headers })
  let stored: Promise<{ path: string; size: number; sha256: string }> | null = null
  parser.on('file', (_name, file) => {
    const path = join(folder!, `busboy-${++count}`)
    const hash = createHash('sha256')
    const out = createWriteStream(path)
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk)
        done(null, chunk)
      },
    })
    stored = pipeline(file, hashing, out).then(() => ({
      path,
      size: out.bytesWritten,
      sha256: hash.digest('hex'),
    }))
  })
  await pipeline(req, parser)
  if (!stored) return answer(res, 400, { code: 'NO_FILE' })
  answer(res, 201, await stored)
}

const server = createServer((req, res) => {
  const handle = mode === 'pipe' ? pipe : withBusboy
  handle(req, res).catch((error: unknown) => answer(res, 500, { message: String(error) }))
})
server.requestTimeout = 0
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  console.log(`listening http://127.0.0.1:${port}/`)
})
process.once('SIGTERM', () => server.close())
