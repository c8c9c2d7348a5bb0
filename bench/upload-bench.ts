/**
 * Upload benchmark: streams a 1 GiB WAV (a valid header and silence, made on the fly) to the
 * example server running in a child process, samples the child's resident memory, and
 * compares the upload time with a plain disk write of the same bytes measured in the same run.
 *
 *   node bench/upload-bench.ts            (SIZE_MIB=1024 by default)
 *
 * The server runs with `WORKER=false` (no transcoding: this measures the upload path:
 * multipart parsing, hashing, spooling, probing, storing) and `DATABASE_URL=memory://`.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const MIB = 1024 * 1024
const SIZE = Number(process.env.SIZE_MIB ?? 1024) * MIB
const CHUNK = MIB
const LIMIT_MIB = 150
const MAIN = fileURLToPath(new URL('../examples/server/src/main.ts', import.meta.url))
const PACKAGE = fileURLToPath(new URL('../examples/server/package.json', import.meta.url))

/** The Node flags of the example's `start` script (`node <flags> src/main.ts`). */
async function startFlags(): Promise<string[]> {
  const { scripts } = JSON.parse(await readFile(PACKAGE, 'utf8')) as { scripts: { start: string } }
  const words = scripts.start.split(/\s+/)
  return words.slice(words.indexOf('node') + 1, words.indexOf('src/main.ts'))
}

/** A 44-byte WAV header: 16-bit stereo 44.1 kHz PCM whose data fills the rest of `total`. */
function wavHeader(total: number): Buffer {
  const header = Buffer.alloc(44)
  const dataSize = total - 44
  header.write('RIFF', 0)
  header.writeUInt32LE(total - 8, 4)
  header.write('WAVE', 8)
  header.write('fmt ', 12)
  header.writeUInt32LE(16, 16)
  header.writeUInt16LE(1, 20) // PCM
  header.writeUInt16LE(2, 22) // channels
  header.writeUInt32LE(44_100, 24)
  header.writeUInt32LE(44_100 * 4, 28) // byte rate
  header.writeUInt16LE(4, 32) // block align
  header.writeUInt16LE(16, 34)
  header.write('data', 36)
  header.writeUInt32LE(dataSize, 40)
  return header
}

/** The file's bytes, in chunks of one reused buffer of silence. */
function* wavChunks(total: number): Generator<Buffer> {
  const silence = Buffer.alloc(CHUNK)
  yield wavHeader(total)
  let left = total - 44
  while (left > 0) {
    const n = Math.min(left, CHUNK)
    yield n === CHUNK ? silence : silence.subarray(0, n)
    left -= n
  }
}

async function rawDiskWrite(path: string): Promise<number> {
  const started = performance.now()
  const out = createWriteStream(path)
  for (const chunk of wavChunks(SIZE)) {
    if (!out.write(chunk)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'close')
  return performance.now() - started
}

async function memory(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0)
  return { rss: kib('VmRSS') * 1024, hwm: kib('VmHWM') * 1024 }
}

async function startServer(
  dataDir: string,
  flags: string[],
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [...flags, MAIN], {
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      DATA_DIR: dataDir,
      DATABASE_URL: 'memory://',
      WORKER: 'false',
      MAX_UPLOAD_BYTES: String(SIZE + MIB),
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let output = ''
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (data: Buffer) => {
      output += data
      const match =
        /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output) ??
        /127\.0\.0\.1:(\d+)\//.exec(output)
      if (match) resolve(Number(match[1]))
    })
    child.once('exit', (code) => reject(new Error(`the server exited with ${code}: ${output}`)))
  })
  return { child, port }
}

async function upload(port: number): Promise<{ ms: number; status: number; body: string }> {
  const boundary = `----bench${Date.now()}`
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="presets"\r\n\r\nwav\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="silence.wav"\r\n` +
      'Content-Type: audio/wav\r\n\r\n',
  )
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`)
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/api/uploads',
        headers: {
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': head.length + SIZE + tail.length,
        },
      },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (data) => {
          body += data
        })
        res.on('end', () =>
          resolve({ ms: performance.now() - started, status: res.statusCode ?? 0, body }),
        )
      },
    )
    req.on('error', reject)
    void (async () => {
      req.write(head)
      for (const chunk of wavChunks(SIZE)) {
        if (!req.write(chunk)) await once(req, 'drain')
      }
      req.end(tail)
    })()
  })
}

interface Round {
  label: string
  idle: number
  peak: number
  uploadMs: number
}

async function round(label: string, flags: string[], dir: string): Promise<Round> {
  const server = await startServer(join(dir, `data-${label}`), flags)
  try {
    const pid = server.child.pid!
    const idle = await memory(pid)
    let peakRss = idle.rss
    const sampler = setInterval(() => {
      memory(pid).then(
        (m) => {
          peakRss = Math.max(peakRss, m.rss)
        },
        () => {},
      )
    }, 25)
    const result = await upload(server.port)
    clearInterval(sampler)
    const after = await memory(pid)
    if (result.status !== 201) throw new Error(`upload answered ${result.status}: ${result.body}`)
    const { asset } = JSON.parse(result.body)
    if (asset.size !== SIZE) throw new Error(`stored ${asset.size} bytes, sent ${SIZE}`)
    return { label, idle: idle.rss, peak: Math.max(peakRss, after.hwm), uploadMs: result.ms }
  } finally {
    server.child.kill('SIGTERM')
    await once(server.child, 'exit')
    await rm(join(dir, `data-${label}`), { recursive: true, force: true })
  }
}

const dir = await mkdtemp(join(tmpdir(), 'transcodekit-bench-'))
try {
  const flags = await startFlags()
  const rounds = [
    await round('plain node', [], dir),
    await round(`as \`pnpm start\` (${flags.join(' ') || 'no flags'})`, flags, dir),
  ]
  // The baseline, in the same run, on the same disk: the same bytes written to a file.
  const rawMs = await rawDiskWrite(join(dir, 'raw.wav'))
  await rm(join(dir, 'raw.wav'), { force: true })

  const mib = (bytes: number) => (bytes / MIB).toFixed(1)
  console.log(`upload of ${mib(SIZE)} MiB (a WAV of silence) to the example server, worker off`)
  console.log(
    `raw disk write of the same bytes: ${(rawMs / 1000).toFixed(2)} s (${mib(SIZE / (rawMs / 1000))} MiB/s)`,
  )
  for (const r of rounds) {
    console.log(`${r.label}:`)
    console.log(`  server RSS idle        ${mib(r.idle)} MiB`)
    console.log(`  server peak RSS        ${mib(r.peak)} MiB (limit ${LIMIT_MIB} MiB)`)
    console.log(
      `  upload time            ${(r.uploadMs / 1000).toFixed(2)} s (${mib(SIZE / (r.uploadMs / 1000))} MiB/s)`,
    )
    console.log(`  ratio upload / raw     ${(r.uploadMs / rawMs).toFixed(2)}`)
  }
  const ok = rounds[1]!.peak < LIMIT_MIB * MIB
  console.log(
    ok
      ? `PASS: peak RSS under ${LIMIT_MIB} MiB as started by pnpm start`
      : `FAIL: peak RSS over ${LIMIT_MIB} MiB`,
  )
  process.exitCode = ok ? 0 : 1
} finally {
  await rm(dir, { recursive: true, force: true })
}
