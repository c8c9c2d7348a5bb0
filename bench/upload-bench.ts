/**
 * Upload benchmark: streams a 1 GiB WAV (a valid header and silence, made on the fly) to the
 * example server running in a child process, and compares the upload time with a plain disk
 * write of the same bytes measured in the same run. Each configuration gets a fresh server and
 * data folder, all started as `pnpm start` starts the server (its Node flags, and its compile
 * cache, here a folder of the bench's own that a first start fills, as any earlier start would):
 *
 *   - `memory://` database, started as `pnpm start` starts it;
 *   - the default database, embedded PostgreSQL (PGlite) in a new data folder: the server runs
 *     it in a process of its own, which it talks to over a Unix socket;
 *   - the same, restarted on the data folder its first start made (the usual case: the first
 *     start in a folder also runs initdb).
 *
 * For the server process, and for the embedded database process where there is one: the resident
 * memory at start (peak while opening), idle (settled, just before the upload), peak during the
 * upload (the kernel's high-water mark, reset through `/proc/<pid>/clear_refs` just before it),
 * and peak minus idle, the upload's own cost. The 150 MiB limit is checked on the server process;
 * the database process is printed next to it, and the sum of the two.
 *
 *   node bench/upload-bench.ts            (SIZE_MIB=1024 by default; ROUNDS=memory,embedded,…)
 *
 * The server runs with `WORKER=false`: this measures the upload path (multipart parsing,
 * hashing, spooling, probing, storing, recording the asset and its job), not transcoding.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scriptCommand } from '../packages/cli/test/server-process.ts'

const MIB = 1024 * 1024
const SIZE = Number(process.env.SIZE_MIB ?? 1024) * MIB
const CHUNK = MIB
const LIMIT_MIB = 150
const MAIN = fileURLToPath(new URL('../examples/server/src/main.ts', import.meta.url))
const SETTLE_MS = 3000

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

/** Resets the process's peak RSS (VmHWM) to its current RSS (Linux 4.0+). */
async function resetPeak(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5')
}

async function startServer(
  dataDir: string,
  flags: string[],
  env: Record<string, string>,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [...flags, MAIN], {
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      DATA_DIR: dataDir,
      DATABASE_URL: '',
      ...env,
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

interface Config {
  key: string
  label: string
  flags: string[]
  env: Record<string, string>
  /** Whether this is how `pnpm start` runs (the configuration the limit applies to). */
  asStarted: boolean
  /** Start and stop the server once first, so the measured start opens an existing folder. */
  restart?: boolean
}

interface Usage {
  startupPeak: number
  idle: number
  peak: number
}

interface Round {
  config: Config
  startupMs: number
  server: Usage
  /** The embedded database process, when the server runs one. */
  database: Usage | null
  uploadMs: number
}

/** The child processes of `pid` (Linux). */
async function children(pid: number): Promise<number[]> {
  const list = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')
  return list.split(/\s+/).filter(Boolean).map(Number)
}

async function round(config: Config, dir: string): Promise<Round> {
  const dataDir = join(dir, `data-${config.key}`)
  if (config.restart) {
    const first = await startServer(dataDir, config.flags, config.env)
    first.child.kill('SIGTERM')
    await once(first.child, 'exit')
  }
  const started = performance.now()
  const server = await startServer(dataDir, config.flags, config.env)
  const startupMs = performance.now() - started
  try {
    const pids = [server.child.pid!]
    // The embedded database process is the server's only Node child (ffmpeg probes come and go).
    const [databasePid] = await children(server.child.pid!)
    if (databasePid !== undefined) pids.push(databasePid)
    // Let start-up work finish (V8 compiling PGlite's WebAssembly in the background, the
    // first collections) before calling the processes idle.
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
    const startup = await Promise.all(pids.map(memory))
    await Promise.all(pids.map(resetPeak))
    const idle = await Promise.all(pids.map(memory))
    const result = await upload(server.port)
    const after = await Promise.all(pids.map(memory))
    if (result.status !== 201) throw new Error(`upload answered ${result.status}: ${result.body}`)
    const { asset } = JSON.parse(result.body)
    if (asset.size !== SIZE) throw new Error(`stored ${asset.size} bytes, sent ${SIZE}`)
    const usage = (i: number): Usage => ({
      startupPeak: startup[i]!.hwm,
      idle: idle[i]!.rss,
      peak: after[i]!.hwm,
    })
    return {
      config,
      startupMs,
      server: usage(0),
      database: pids.length > 1 ? usage(1) : null,
      uploadMs: result.ms,
    }
  } finally {
    server.child.kill('SIGTERM')
    await once(server.child, 'exit')
    await rm(dataDir, { recursive: true, force: true })
  }
}

const dir = await mkdtemp(join(tmpdir(), 'transcodekit-bench-'))
try {
  // As `pnpm start` runs it, with a compile cache of the bench's own, filled by a first start
  // (as by any earlier `pnpm start`): later starts skip stripping TypeScript types.
  const start = scriptCommand('start')
  const flags = start.flags
  const env = { ...start.env, NODE_COMPILE_CACHE: join(dir, 'compile-cache') }
  const warmUp = await startServer(join(dir, 'warm-up'), flags, {
    ...env,
    DATABASE_URL: 'memory://',
  })
  warmUp.child.kill('SIGTERM')
  await once(warmUp.child, 'exit')
  const configs: Config[] = [
    {
      key: 'memory',
      label: `memory:// database, as \`pnpm start\` (${flags.join(' ') || 'no flags'})`,
      flags,
      env: { ...env, DATABASE_URL: 'memory://' },
      asStarted: true,
    },
    {
      key: 'embedded',
      label: `embedded PostgreSQL (the default database, new data folder), as \`pnpm start\` (${flags.join(' ') || 'no flags'})`,
      flags,
      env,
      asStarted: true,
    },
    {
      key: 'embedded-restart',
      label: `embedded PostgreSQL, restarted on its existing data folder, as \`pnpm start\` (${flags.join(' ') || 'no flags'})`,
      flags,
      env,
      asStarted: true,
      restart: true,
    },
  ]
  const wanted = process.env.ROUNDS?.split(',')
  const rounds: Round[] = []
  for (const config of configs) {
    if (!wanted || wanted.includes(config.key)) rounds.push(await round(config, dir))
  }
  // The baseline, in the same run, on the same disk: the same bytes written to a file.
  const rawMs = await rawDiskWrite(join(dir, 'raw.wav'))
  await rm(join(dir, 'raw.wav'), { force: true })

  const mib = (bytes: number) => (bytes / MIB).toFixed(1)
  console.log(`upload of ${mib(SIZE)} MiB (a WAV of silence) to the example server, worker off`)
  console.log(
    `raw disk write of the same bytes: ${(rawMs / 1000).toFixed(2)} s (${mib(SIZE / (rawMs / 1000))} MiB/s)`,
  )
  let ok = true
  for (const r of rounds) {
    const under = r.server.peak < LIMIT_MIB * MIB
    if (r.config.asStarted && !under) ok = false
    console.log(`${r.config.label}:`)
    console.log(`  start                  ${(r.startupMs / 1000).toFixed(1)} s`)
    const rows: Array<[string, (u: Usage) => string]> = [
      ['peak RSS at start', (u) => mib(u.startupPeak)],
      ['idle RSS', (u) => mib(u.idle)],
      ['peak RSS in upload', (u) => mib(u.peak)],
      ["peak - idle (upload's)", (u) => mib(u.peak - u.idle)],
    ]
    const db = r.database
    console.log(
      `  ${''.padEnd(22)} ${'server'.padStart(8)}${db ? `${'database'.padStart(10)}${'sum'.padStart(8)}` : ''}  (MiB)`,
    )
    for (const [name, value] of rows) {
      const sum = db
        ? value({
            startupPeak: r.server.startupPeak + db.startupPeak,
            idle: r.server.idle + db.idle,
            peak: r.server.peak + db.peak,
          })
        : ''
      console.log(
        `  ${name.padEnd(22)} ${value(r.server).padStart(8)}${db ? `${value(db).padStart(10)}${sum.padStart(8)}` : ''}`,
      )
    }
    console.log(`  server under ${LIMIT_MIB} MiB    ${under ? 'yes' : 'NO'}`)
    console.log(
      `  upload time            ${(r.uploadMs / 1000).toFixed(2)} s (${mib(SIZE / (r.uploadMs / 1000))} MiB/s)`,
    )
    console.log(`  ratio upload / raw     ${(r.uploadMs / rawMs).toFixed(2)}`)
  }
  console.log(
    ok
      ? `PASS: the server's peak RSS under ${LIMIT_MIB} MiB in every configuration as started by pnpm start`
      : `FAIL: the server's peak RSS over ${LIMIT_MIB} MiB in a configuration as started by pnpm start`,
  )
  process.exitCode = ok ? 0 : 1
} finally {
  await rm(dir, { recursive: true, force: true })
}
