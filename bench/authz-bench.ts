// Authorization overhead on GET /jobs/:id: the plugin with an owner resolver (Bearer API key)
// and an authorize hook, against the same plugin open (no options: one default owner), both
// serving the same kind of job from the memory repository in this process. Rounds interleave
// the two (the order swapping each round) so that drift of a shared machine hits both alike.
//
//   node bench/authz-bench.ts            # ROUNDS=9 BENCH_SECONDS=3 CONNECTIONS=10 to change
//
// Prints, per round and route, requests/s, p50/p99 latency and the server's CPU time per
// request (this thread only: the load generator runs in a worker thread), then two ratios
// (authorized ÷ open) as min / median / max over the rounds: requests/s, which the other
// processes of a shared machine push around, and CPU per request, which they barely touch.
import { timingSafeEqual } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import type { FastifyInstance, FastifyRequest } from 'fastify'
// Relative imports: the workspace root depends on none of the packages.
import {
  createTranscoder,
  ffmpegEngine,
  localStorage,
  memoryRepository,
  type TranscodeService,
} from '../packages/core/src/index.ts'
import { makeTone } from '../packages/core/src/testing/media-fixtures.ts'
import transcodekit, { type TranscodekitPluginOptions } from '../packages/fastify/src/index.ts'

// Fastify as the plugin's package has it (the root does not depend on it).
const Fastify: typeof import('fastify').default = createRequire(
  new URL('../packages/fastify/package.json', import.meta.url),
)('fastify')

const ROUNDS = Number(process.env.ROUNDS ?? 9)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10)
if (!(ROUNDS >= 5)) throw new Error('ROUNDS must be at least 5')

const KEY = 'bench-key-0123456789abcdef'
const keys = new Map([[KEY, 'alice']])

/** The owner of a `Bearer <key>` header, keys compared in constant time. */
function ownerOfKey(request: FastifyRequest): string | null {
  const match = /^Bearer ([\x21-\x7e]{1,200})$/.exec(request.headers.authorization ?? '')
  if (!match) return null
  const given = Buffer.from(match[1]!)
  let owner: string | null = null
  for (const [key, name] of keys) {
    const expected = Buffer.from(key)
    if (expected.length === given.length && timingSafeEqual(expected, given)) owner = name
  }
  return owner
}

interface Served {
  app: FastifyInstance
  service: TranscodeService
  url: string
  headers: Record<string, string>
}

async function serve(
  dir: string,
  name: string,
  source: string,
  auth: Pick<TranscodekitPluginOptions, 'owner' | 'authorize'>,
  headers: Record<string, string>,
): Promise<Served> {
  const service = createTranscoder({
    storage: localStorage({ root: join(dir, name, 'files'), baseUrl: '/files/' }),
    engine: ffmpegEngine(),
    repository: memoryRepository(),
    tmpDir: join(dir, name, 'tmp'),
    worker: false,
  })
  const app = Fastify({ logger: false })
  await app.register(transcodekit, { service, ...auth })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const owner = auth.owner ? 'alice' : undefined
  const asset = await service.ingest(createReadStream(source), { owner, filename: 'tone.wav' })
  const job = await service.transcode(asset.id, { owner, presets: ['flac', 'mp3'] })
  const { port } = app.server.address() as AddressInfo
  const url = `http://127.0.0.1:${port}/jobs/${job.id}`
  const check = await fetch(url, { headers })
  if (check.status !== 200) throw new Error(`${name}: GET /jobs/:id answered ${check.status}`)
  return { app, service, url, headers }
}

interface Sample {
  rps: number
  p50: number
  p99: number
  /** Microseconds of this thread's CPU per request served. */
  cpuUs: number
}

async function load(target: Served, seconds: number): Promise<Sample> {
  const cpu = process.threadCpuUsage()
  const result = await autocannon({
    url: target.url,
    headers: target.headers,
    connections: CONNECTIONS,
    duration: seconds,
    // The client in a thread of its own, off the servers' event loop.
    workers: 1,
  })
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${target.url}: ${result.non2xx} non-2xx answers, ${result.errors} errors`)
  }
  const used = process.threadCpuUsage(cpu)
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUs: (used.user + used.system) / result.requests.total,
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const dir = await mkdtemp(join(tmpdir(), 'tk-authz-bench-'))
const served: Served[] = []
try {
  const tone = await makeTone(join(dir, 'tone.wav'), { seconds: 1, format: 'wav' })
  const open = await serve(dir, 'open', tone, {}, {})
  served.push(open)
  const authorized = await serve(
    dir,
    'authorized',
    tone,
    {
      owner: ownerOfKey,
      // A hook that looks at what it is given, as an app's would.
      authorize: async ({ owner, action, resource }) =>
        owner === 'alice' && (action === 'read' || action === 'download') && resource !== null,
    },
    { authorization: `Bearer ${KEY}` },
  )
  served.push(authorized)

  // Warm-up: the JIT, the sockets.
  await load(open, 1)
  await load(authorized, 1)

  console.log(
    `authz-bench: GET /jobs/:id, ${ROUNDS} rounds x ${SECONDS} s per route, ${CONNECTIONS} connections, Node ${process.version}`,
  )
  const line = (round: string, what: string, s: Sample) =>
    console.log(
      `${round.padEnd(8)} ${what.padEnd(11)} ${s.rps.toFixed(0).padStart(7)} req/s  p50 ${String(s.p50).padStart(3)} ms  p99 ${String(s.p99).padStart(3)} ms  ${s.cpuUs.toFixed(0).padStart(5)} µs CPU/req`,
    )
  const ratios: number[] = []
  const cpuRatios: number[] = []
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 ? ([open, authorized] as const) : ([authorized, open] as const)
    const samples = new Map<Served, Sample>()
    for (const target of order) samples.set(target, await load(target, SECONDS))
    const a = samples.get(authorized)!
    const o = samples.get(open)!
    line(`round ${round}`, 'open', o)
    line('', 'authorized', a)
    ratios.push(a.rps / o.rps)
    cpuRatios.push(a.cpuUs / o.cpuUs)
  }
  const fmt = (value: number) => value.toFixed(3)
  const summary = (label: string, values: number[]) =>
    console.log(
      `${label.padEnd(38)} min ${fmt(Math.min(...values))}  median ${fmt(median(values))}  max ${fmt(Math.max(...values))}`,
    )
  summary('ratio authorized/open, req/s', ratios)
  summary('ratio authorized/open, CPU per request', cpuRatios)
} finally {
  for (const { app, service } of served) {
    await app.close()
    await service.close()
  }
  await rm(dir, { recursive: true, force: true })
}
