import { type ChildProcess, spawn } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { filesUnder, makeTone } from '@transcodekit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { multipart, waitFor } from './helpers.ts'

const SERVER = join(import.meta.dirname, 'support', 'upload-server.ts')

let dir: string
let root: string
let spool: string
let work: string
let song: Buffer
const children: ChildProcess[] = []
const sockets: Socket[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'transcodekit-leftovers-process-'))
  root = join(dir, 'files')
  spool = join(dir, 'tmp', 'uploads')
  work = join(dir, 'tmp', 'ffmpeg')
  await mkdir(spool, { recursive: true })
  await mkdir(work, { recursive: true })
  // Ten minutes of audio: its job (wav, flac, m4a) runs for seconds, long enough to kill it.
  // (a minute made once and repeated: MP3 frames follow one another).
  const minute = await readFile(
    await makeTone(join(dir, 'song.mp3'), { seconds: 60, format: 'mp3' }),
  )
  song = Buffer.concat(Array.from({ length: 10 }, () => minute))
})
afterAll(async () => {
  for (const socket of sockets) socket.destroy()
  for (const child of children) child.kill('SIGKILL')
  await rm(dir, { recursive: true, force: true })
})

async function startServer(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [SERVER, root, spool, work], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.push(child)
  for await (const line of createInterface({ input: child.stdout! })) {
    return { child, port: (JSON.parse(line) as { port: number }).port }
  }
  throw new Error('the server exited before it listened')
}

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

function body() {
  return multipart([
    { name: 'presets', value: 'wav,flac,m4a' },
    { name: 'file', filename: 'song.mp3', contentType: 'audio/mpeg', data: song },
  ])
}

/** Sends the head and half the body of an upload, then nothing; the socket stays open. */
function stallUpload(port: number): void {
  const form = body()
  const socket = connect(port, '127.0.0.1', () => {
    socket.write(
      `POST /uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${form.headers['content-type']}\r\n` +
        `Content-Length: ${form.payload.length}\r\n\r\n`,
    )
    socket.write(form.payload.subarray(0, form.payload.length / 2))
  })
  socket.on('error', () => {})
  sockets.push(socket)
}

async function leftovers(): Promise<{ spool: string[]; work: string[]; storageTemp: string[] }> {
  return {
    spool: await filesUnder(spool),
    work: await filesUnder(work),
    storageTemp: await filesUnder(join(root, '.tmp')),
  }
}

describe('leftovers of a killed process', () => {
  it('kill -9 mid-job and mid-upload: another live process keeps them, the next start removes them', async () => {
    const a = await startServer()
    const first = body()
    const res = await fetch(`http://127.0.0.1:${a.port}/uploads`, {
      method: 'POST',
      headers: first.headers,
      body: first.payload,
    })
    expect(res.status).toBe(201)
    stallUpload(a.port)
    // Mid-job (ffmpeg has written part of an output) and mid-upload (half a body spooled).
    const during = await waitFor(
      async () => {
        const state = await leftovers()
        return state.spool.length === 1 && state.work.length > 0 ? state : null
      },
      30_000,
      'a spool and a partial output',
    )
    const workFolders = await readdir(work)
    expect(workFolders).toHaveLength(1)

    // Another process starts on the same folders and sweeps: the live one keeps everything.
    const b = await startServer()
    expect(await readdir(work)).toEqual(workFolders)
    expect(await filesUnder(spool)).toEqual(during.spool)

    await kill9(a.child)
    // Left behind, as a crash leaves them.
    expect(await readdir(work)).toEqual(workFolders)
    expect(await filesUnder(spool)).toEqual(during.spool)

    await kill9(b.child)
    const c = await startServer()
    expect(await leftovers()).toEqual({ spool: [], work: [], storageTemp: [] })
    expect(await readdir(work)).toEqual([])

    // And it serves.
    const form = body()
    const ok = await fetch(`http://127.0.0.1:${c.port}/uploads`, {
      method: 'POST',
      headers: form.headers,
      body: form.payload,
    })
    expect(ok.status).toBe(201)
  })
})
