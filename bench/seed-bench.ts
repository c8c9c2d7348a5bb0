/**
 * Seed job benchmark: the seed's three outputs (WAV 44.1 kHz 16-bit `1351620000001-300300`,
 * FLAC `-300110`, AAC 256k in MP4 `-100110`) of a generated 10-minute MP3, through the API of
 * transcodekit's server (as `pnpm start` runs it, `memory://` database, its worker on: upload,
 * probe, one ffmpeg with three outputs, storing; timed from the first byte of the upload until
 * `GET /api/jobs/:id` says `complete`), against raw ffmpeg running the same command line (built
 * by the engine's own argument functions from the same probe, three outputs in one process)
 * on the same file. Rounds interleave the two (the order reversed every other round).
 *
 *   node bench/seed-bench.ts            # ROUNDS=5 SEED_SECONDS=600 (the defaults)
 *
 * Prints each round, then min / median / max of the times and of the per-round ratio.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scriptCommand } from '../packages/cli/test/server-process.ts'
import {
  ffmpegCommandArgs,
  ffmpegInputArgs,
  ffmpegOutputArgs,
} from '../packages/core/src/engine/ffmpeg-args.ts'
import { isTerminal, type JobState, probeMedia } from '../packages/core/src/index.ts'
import { ffmpegPath } from '../packages/core/src/media/ffmpeg-binaries.ts'
import { createPresetCatalog } from '../packages/core/src/presets/preset-catalog.ts'
import { makeTone } from '../packages/core/src/testing/media-fixtures.ts'
import {
  type Contender,
  interleave,
  printSpread,
  ratios,
  roundsFromEnv,
} from './support/bench-rounds.ts'
import { type ChildServer, startChild, stopChild } from './support/child-server.ts'

const ROUNDS = roundsFromEnv(5)
const SECONDS = Number(process.env.SEED_SECONDS ?? 600)
const SEED_PRESETS = ['1351620000001-300300', '1351620000001-300110', '1351620000001-100110']
const MAIN = fileURLToPath(new URL('../examples/server/src/main.ts', import.meta.url))

const dir = await mkdtemp(join(tmpdir(), 'tk-seed-bench-'))
let server: ChildServer | null = null
try {
  const source = await makeTone(join(dir, 'seed.mp3'), { seconds: SECONDS, format: 'mp3' })
  const bytes = await readFile(source)

  // The engine's command line for this input and these presets (the engine's own builders).
  const media = await probeMedia(source)
  const presets = createPresetCatalog().resolveAll(SEED_PRESETS)
  const rawArgs = async (round: number) => {
    const work = join(dir, `raw-${round}`)
    const outputs = await Promise.all(
      presets.map(async (preset, index) => {
        const out = join(work, `out-${index}`)
        await mkdir(out, { recursive: true })
        return ffmpegOutputArgs(preset, {
          index,
          media,
          path: join(out, `seed.${preset.extension}`),
        })
      }),
    )
    return { work, args: ffmpegCommandArgs(ffmpegInputArgs(source, media), outputs) }
  }

  const script = scriptCommand('start')
  server = await startChild([...script.flags, MAIN], {
    ...script.env,
    HOST: '127.0.0.1',
    PORT: '0',
    DATA_DIR: join(dir, 'data'),
    DATABASE_URL: 'memory://',
    RATE_LIMIT_UPLOADS: '0',
    RATE_LIMIT_JOB_ACTIONS: '0',
  })
  const api = `http://127.0.0.1:${server.port}/api`

  const raw: Contender<number> = {
    name: 'ffmpeg',
    async run(round) {
      const { work, args } = await rawArgs(round)
      const started = performance.now()
      const child = spawn(ffmpegPath(), args, { stdio: ['ignore', 'ignore', 'inherit'] })
      const [code] = await once(child, 'exit')
      const ms = performance.now() - started
      if (code !== 0) throw new Error(`ffmpeg exited with ${code}`)
      await rm(work, { recursive: true, force: true })
      return ms
    },
  }
  const viaApi: Contender<number> = {
    name: 'api',
    async run() {
      const started = performance.now()
      const form = new FormData()
      form.append('presets', SEED_PRESETS.join(','))
      form.append('file', new Blob([bytes], { type: 'audio/mpeg' }), 'seed.mp3')
      const res = await fetch(`${api}/uploads`, { method: 'POST', body: form })
      const body = (await res.json()) as { asset: { id: string }; job: { id: string } }
      if (res.status !== 201) throw new Error(`upload: ${res.status} ${JSON.stringify(body)}`)
      let state: JobState = 'submitted'
      while (!isTerminal(state)) {
        await new Promise((resolve) => setTimeout(resolve, 50))
        const job = (await (await fetch(`${api}/jobs/${body.job.id}`)).json()) as {
          state: JobState
        }
        state = job.state
      }
      const ms = performance.now() - started
      if (state !== 'complete') throw new Error(`the job ended ${state}`)
      const deleted = await fetch(`${api}/assets/${body.asset.id}`, { method: 'DELETE' })
      if (deleted.status !== 204) throw new Error(`DELETE answered ${deleted.status}`)
      return ms
    },
  }

  console.log(
    `seed-bench: ${SECONDS / 60}-minute mp3 (${(bytes.length / 1024 / 1024).toFixed(1)} MiB) to ${SEED_PRESETS.join(', ')}, ${ROUNDS} interleaved rounds, ${ffmpegPath()}, Node ${process.version}`,
  )
  const samples = await interleave(ROUNDS, [raw, viaApi], (round, name, ms) =>
    console.log(
      `round ${String(round).padEnd(3)} ${name.padEnd(7)} ${(ms / 1000).toFixed(2).padStart(7)} s`,
    ),
  )
  const seconds = (name: string) => samples.get(name)!.map((ms) => ms / 1000)
  console.log('summary (over the rounds):')
  printSpread('  raw ffmpeg, one process: seconds', seconds('ffmpeg'))
  printSpread('  through the API: seconds', seconds('api'))
  printSpread('  ratio api / raw ffmpeg', ratios(seconds('api'), seconds('ffmpeg')), 3)
  console.log('goal: <= 1.05')
} finally {
  if (server) await stopChild(server)
  await rm(dir, { recursive: true, force: true })
}
