/**
 * Spawn latency against the size of the process that spawns. Linux's fork(2) copies the page
 * tables of the parent, so each `child_process.spawn` from a large server blocks its main
 * thread longer; the process launcher of @transcodekit/core spawns from a small process instead.
 *
 * At each size (this process grown to about that RSS with touched buffers), rounds interleave
 * spawning `true` directly and through the launcher, SPAWNS at a time each, one after another,
 * and print per spawn: the main thread blocked in the `spawn` call, and the time to `close`.
 *
 *   node bench/spawn-bench.ts
 *   ROUNDS=5 SPAWNS=50 SIZES_MB=0,400,800   (the defaults)
 */
import { directSpawner, ProcessLauncher, type Spawner } from '../packages/core/src/index.ts'
import { type Contender, interleave, printSpread, roundsFromEnv } from './support/bench-rounds.ts'

const ROUNDS = roundsFromEnv(5)
const SPAWNS = Number(process.env.SPAWNS ?? 50)
const SIZES_MB = (process.env.SIZES_MB ?? '0,400,800').split(',').map(Number)

interface Sample {
  /** Mean main-thread time inside the spawn call, ms. */
  blockedMs: number
  /** Mean time from the call to `close`, ms. */
  closeMs: number
}

async function measure(spawner: Spawner): Promise<Sample> {
  let blocked = 0
  let total = 0
  for (let i = 0; i < SPAWNS; i++) {
    const started = performance.now()
    const child = spawner('true', [])
    blocked += performance.now() - started
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject)
      child.once('close', () => resolve())
    })
    total += performance.now() - started
  }
  return { blockedMs: blocked / SPAWNS, closeMs: total / SPAWNS }
}

const ballast: Buffer[] = []
function growTo(mb: number): number {
  const chunk = 64 * 1024 * 1024
  while (process.memoryUsage().rss < mb * 1024 * 1024) {
    const buffer = Buffer.allocUnsafe(chunk)
    // Touch every page, so that it is mapped and resident.
    for (let offset = 0; offset < chunk; offset += 4096) buffer[offset] = 1
    ballast.push(buffer)
  }
  return process.memoryUsage().rss / 1024 / 1024
}

const launcher = new ProcessLauncher()
await measure(launcher.spawn) // starts the launcher
console.log(
  `spawn-bench: ${SPAWNS} spawns of \`true\` per round, ${ROUNDS} rounds, Node ${process.version}`,
)
for (const mb of SIZES_MB) {
  const rss = growTo(mb)
  const contenders: Contender<Sample>[] = [
    { name: 'direct', run: () => measure(directSpawner) },
    { name: 'launcher', run: () => measure(launcher.spawn) },
  ]
  const samples = await interleave(ROUNDS, contenders)
  console.log(`process RSS ${rss.toFixed(0)} MB:`)
  for (const name of ['direct', 'launcher']) {
    const of = samples.get(name)!
    printSpread(
      `  ${name}: main thread blocked per spawn`,
      of.map((s) => s.blockedMs),
      3,
      'ms',
    )
    printSpread(
      `  ${name}: spawn to close`,
      of.map((s) => s.closeMs),
      2,
      'ms',
    )
  }
}
launcher.close()
