/**
 * Upload benchmark: one multipart upload of a WAV (a valid header and silence, made on the
 * fly) to four servers, each in a process of its own, in interleaved rounds (the order
 * reversed every other round, so that the drift of a shared machine hits all alike):
 *
 *   - baseline `pipe`: a bare Node `http` server piping the whole request body to a file;
 *   - baseline `busboy`: a bare Node `http` server with busboy, the file part to disk and its
 *     sha256 (the work an upload server must at least do);
 *   - `memory`: transcodekit's server as `pnpm start` runs it (its Node flags), `WORKER=false`,
 *     the `memory://` database;
 *   - `embedded`: the same on the default database, embedded PostgreSQL (PGlite) in a new data
 *     folder, which the server runs in a process of its own.
 *
 * Each round measures the upload's wall time (first byte sent to the answer) and the peak RSS
 * of the server process during it (the kernel's high-water mark, reset through
 * `/proc/<pid>/clear_refs` just before), the CPU seconds the server used for it (all its
 * threads: on a shared machine the time swings with the share of the cores each gets, the
 * work much less), and for `embedded` the database process's peak RSS too. After each upload
 * the file (or asset) is removed again. Prints every round, then min / median / max of the
 * times, of the per-round ratios to each baseline, and of the peak RSS. Each program is
 * started and stopped once before the rounds, so that every measured process starts with its
 * TypeScript in the compile cache, as `pnpm start` does after its first start.
 *
 *   node bench/upload-bench.ts                  # 256 MiB, 5 rounds
 *   SIZE_MIB=1024 ROUNDS=5 node bench/upload-bench.ts   # the issue's 1 GiB
 *   ONLY=pipe,memory node bench/upload-bench.ts # a subset (the baselines are always run)
 *   SERVER_FLAGS='--max-semi-space-size=1;--max-semi-space-size=4' node bench/upload-bench.ts
 *       # compares Node flag sets (`;` between sets; `NAME=value` words set the environment) in
 *       # the same rounds, `memory#1`, `memory#2`, …, instead of the flags and environment of
 *       # `pnpm start`; `--cpu-prof --cpu-prof-dir=…` profiles the server
 */
import { once } from 'node:events'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scriptCommand } from '../packages/cli/test/server-process.ts'
import {
  type Contender,
  interleave,
  printSpread,
  ratios,
  roundsFromEnv,
} from './support/bench-rounds.ts'
import { type ChildServer, startChild, stopChild } from './support/child-server.ts'

const MIB = 1024 * 1024
const SIZE = Number(process.env.SIZE_MIB ?? 256) * MIB
const ROUNDS = roundsFromEnv(5)
const CHUNK = MIB
const LIMIT_MIB = 150
const MAIN = fileURLToPath(new URL('../examples/server/src/main.ts', import.meta.url))
const BARE = fileURLToPath(new URL('./support/bare-upload-server.ts', import.meta.url))
const SETTLE_MS = 3000
// USER_HZ: the unit of /proc/<pid>/stat's times, 100 on Linux.
const CLOCK_TICKS = 100

/** A 44-byte WAV header: 16-bit stereo 44.1 kHz PCM whose data fills the rest of `total`. */
function wavHeader(total: number): Buffer {
  const header = Buffer.alloc(44)
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
  header.writeUInt32LE(total - 44, 40)
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

async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
}

/**
 * CPU seconds (user + system, all threads) the process has used so far (Linux): on a shared
 * machine, the work an upload costs a server, whatever share of the cores it was given.
 */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // The fields after the command name (which is in parentheses); utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/** Resets the process's peak RSS (VmHWM) to its current RSS (Linux 4.0+). */
async function resetPeak(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5')
}

/** The child processes of `pid` (Linux). */
async function children(pid: number): Promise<number[]> {
  const list = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')
  return list.split(/\s+/).filter(Boolean).map(Number)
}

interface Answer {
  ms: number
  status: number
  body: string
}

function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string | number>,
  write: (req: ReturnType<typeof request>) => Promise<void>,
): Promise<Answer> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (data) => {
        body += data
      })
      res.on('end', () =>
        resolve({ ms: performance.now() - started, status: res.statusCode ?? 0, body }),
      )
    })
    req.on('error', reject)
    write(req).catch(reject)
  })
}

/** The same multipart request to every server: a `presets` field, then the file. */
function upload(port: number, path: string): Promise<Answer> {
  const boundary = `----bench${Date.now()}`
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="presets"\r\n\r\nwav\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="silence.wav"\r\n` +
      'Content-Type: audio/wav\r\n\r\n',
  )
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`)
  const headers = {
    'content-type': `multipart/form-data; boundary=${boundary}`,
    'content-length': head.length + SIZE + tail.length,
  }
  return send(port, 'POST', path, headers, async (req) => {
    req.write(head)
    for (const chunk of wavChunks(SIZE)) {
      if (!req.write(chunk)) await once(req, 'drain')
    }
    req.end(tail)
  })
}

interface Sample {
  ms: number
  /** Peak RSS of the server process during the upload. */
  serverPeak: number
  /** CPU seconds the server process used for the upload. */
  serverCpu: number
  /** Peak RSS of the embedded database process, where there is one. */
  databasePeak: number | null
}

function contender(
  name: string,
  server: ChildServer,
  databasePid: number | undefined,
  path: string,
  check: (answer: Answer) => Promise<void>,
): Contender<Sample> {
  const pids = [server.child.pid!, ...(databasePid === undefined ? [] : [databasePid])]
  return {
    name,
    async run() {
      await Promise.all(pids.map(resetPeak))
      const cpuBefore = await cpuSeconds(pids[0]!)
      const answer = await upload(server.port, path)
      const serverCpu = (await cpuSeconds(pids[0]!)) - cpuBefore
      const [serverPeak, databasePeak] = await Promise.all(pids.map(peakRss))
      if (answer.status !== 201) throw new Error(`${name}: ${answer.status} ${answer.body}`)
      await check(answer)
      return {
        ms: answer.ms,
        serverPeak: serverPeak!,
        serverCpu,
        databasePeak: databasePeak ?? null,
      }
    },
  }
}

/** The bare servers answer `{ path, size }`: check the size, remove the file. */
async function bareCheck(answer: Answer): Promise<void> {
  const { path, size } = JSON.parse(answer.body) as { path: string; size: number }
  await rm(path, { force: true })
  // `pipe` stores the whole body (multipart framing included), `busboy` only the file.
  if (size < SIZE) throw new Error(`stored ${size} bytes, sent ${SIZE}`)
}

/** Our server answers `{ asset }`: check its size, then delete it (and its job) again. */
function serverCheck(port: number) {
  return async (answer: Answer) => {
    const { asset } = JSON.parse(answer.body) as { asset: { id: string; size: number } }
    if (asset.size !== SIZE) throw new Error(`stored ${asset.size} bytes, sent ${SIZE}`)
    const deleted = await send(port, 'DELETE', `/api/assets/${asset.id}`, {}, async (req) => {
      req.end()
    })
    if (deleted.status !== 204) throw new Error(`DELETE answered ${deleted.status}`)
  }
}

/**
 * Starts and stops each program once, with the flags it will be measured with (V8's flags are
 * part of the cache's key), so that the measured processes find their TypeScript already
 * stripped in the compile cache (written as a process exits), as `pnpm start` does after its
 * first start. Without it every process of the run started cold and held Node's TypeScript
 * stripper (about 14 MiB of RSS), the baselines as well as the servers.
 */
async function warmCompileCache(programs: Array<[string[], Record<string, string>]>) {
  for (const [args, env] of programs) await stopChild(await startChild(args, env))
}

const dir = await mkdtemp(join(tmpdir(), 'tk-upload-bench-'))
const started: ChildServer[] = []
try {
  const script = scriptCommand('start')
  // Every process of the run, baselines included, shares one compile cache (see below).
  const cacheEnv = { NODE_COMPILE_CACHE: join(dir, 'compile-cache') }
  const serverEnv = {
    ...cacheEnv,
    HOST: '127.0.0.1',
    PORT: '0',
    WORKER: 'false',
    MAX_UPLOAD_BYTES: String(SIZE + MIB),
    RATE_LIMIT_UPLOADS: '0',
    RATE_LIMIT_JOB_ACTIONS: '0',
    LOG_LEVEL: 'info',
  }
  const wanted = process.env.ONLY?.split(',')
  const contenders: Contender<Sample>[] = []
  // `NAME=value` words of a set are environment variables, the rest Node flags (as in a script).
  const variants = process.env.SERVER_FLAGS?.split(';').map((set, i) => {
    const words = set.split(/\s+/).filter(Boolean)
    const isEnv = (word: string) => /^[A-Z_][A-Z0-9_]*=/.test(word)
    return {
      suffix: `#${i + 1}`,
      label: set.trim(),
      env: Object.fromEntries(words.filter(isEnv).map((word) => word.split(/=(.*)/s, 2))),
      flags: words.filter((word) => !isEnv(word)),
    }
  }) ?? [
    {
      suffix: '',
      label: `pnpm start: ${script.flags.join(' ')}`,
      env: script.env,
      flags: script.flags,
    },
  ]
  // The servers to measure, each variant on each database.
  const programs: Array<{
    key: string
    name: string
    args: string[]
    env: Record<string, string>
  }> = []
  for (const [key, url] of [
    ['memory', 'memory://'],
    ['embedded', ''],
  ] as const) {
    if (wanted && !wanted.includes(key)) continue
    for (const { suffix, env, flags } of variants) {
      const name = key + suffix
      const programEnv = {
        ...env,
        ...serverEnv,
        DATA_DIR: join(dir, `data-${name}`),
        DATABASE_URL: url,
      }
      programs.push({ key, name, args: [...flags, MAIN], env: programEnv })
    }
  }
  await warmCompileCache([
    [[BARE, 'pipe', dir], cacheEnv],
    ...programs.map(({ args, env }): [string[], Record<string, string>] => [args, env]),
  ])
  for (const mode of ['pipe', 'busboy']) {
    const folder = join(dir, mode)
    await mkdir(folder)
    const bare = await startChild([BARE, mode, folder], cacheEnv)
    started.push(bare)
    contenders.push(contender(mode, bare, undefined, '/upload', bareCheck))
  }
  const servers: string[] = []
  for (const { key, name, args, env } of programs) {
    const server = await startChild(args, env)
    started.push(server)
    // The embedded database process is the server's only Node child.
    const [databasePid] = key === 'embedded' ? await children(server.child.pid!) : []
    contenders.push(contender(name, server, databasePid, '/api/uploads', serverCheck(server.port)))
    servers.push(name)
  }
  // Let start-up work finish (PGlite's WebAssembly compiling, the first collections).
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))

  const mib = (bytes: number) => bytes / MIB
  console.log(
    `upload-bench: ${mib(SIZE)} MiB multipart upload, ${ROUNDS} interleaved rounds, Node ${process.version}`,
  )
  for (const { suffix, label } of variants) console.log(`  server${suffix}: ${label || 'no flags'}`)
  const samples = await interleave(ROUNDS, contenders, (round, name, s) =>
    console.log(
      `round ${String(round).padEnd(3)} ${name.padEnd(9)} ${(s.ms / 1000).toFixed(2).padStart(7)} s  ${(mib(SIZE) / (s.ms / 1000)).toFixed(0).padStart(5)} MiB/s  cpu ${s.serverCpu.toFixed(2).padStart(6)} s  peak RSS ${mib(s.serverPeak).toFixed(1).padStart(6)} MiB${s.databasePeak === null ? '' : ` (+ database ${mib(s.databasePeak).toFixed(1)} MiB)`}`,
    ),
  )
  const ms = (name: string) => samples.get(name)!.map((s) => s.ms)
  console.log('summary (over the rounds):')
  for (const { name } of contenders) {
    printSpread(
      `  ${name}: seconds`,
      ms(name).map((v) => v / 1000),
    )
    printSpread(
      `  ${name}: server CPU seconds`,
      samples.get(name)!.map((s) => s.serverCpu),
    )
    printSpread(
      `  ${name}: server peak RSS`,
      samples.get(name)!.map((s) => mib(s.serverPeak)),
      1,
      'MiB',
    )
    const db = samples.get(name)!.flatMap((s) => (s.databasePeak === null ? [] : [s.databasePeak]))
    if (db.length) printSpread(`  ${name}: database peak RSS`, db.map(mib), 1, 'MiB')
  }
  let ok = true
  for (const name of servers) {
    printSpread(`  ratio ${name} / pipe`, ratios(ms(name), ms('pipe')))
    printSpread(`  ratio ${name} / busboy`, ratios(ms(name), ms('busboy')))
    const cpu = (of: string) => samples.get(of)!.map((s) => s.serverCpu)
    printSpread(`  CPU ratio ${name} / pipe`, ratios(cpu(name), cpu('pipe')))
    const peak = Math.max(...samples.get(name)!.map((s) => s.serverPeak))
    if (peak > LIMIT_MIB * MIB) ok = false
  }
  console.log(
    `server peak RSS ${ok ? `under ${LIMIT_MIB} MiB in every round` : `OVER ${LIMIT_MIB} MiB in some round`} (goal: ratio to pipe <= 1.25)`,
  )
} finally {
  for (const server of started) await stopChild(server)
  await rm(dir, { recursive: true, force: true })
}
