import { readFileSync } from 'node:fs'
import { type ParseArgsConfig, parseArgs } from 'node:util'
import { TranscodeKitError } from '@transcodekit/core'
import { UsageError } from './cli-errors.ts'

type Options = NonNullable<ParseArgsConfig['options']>
type Values = Record<string, string | boolean | string[] | boolean[] | undefined>

interface Parsed {
  values: Values
  positionals: string[]
}

/** One `transcodekit <name>` command. Implementations are imported only when they run. */
interface Command {
  name: string
  summary: string
  /** The text of `transcodekit <name> --help`. */
  help: string
  options: Options
  positionals: { min: number; max: number }
  /** Resolves with the exit code; `serve` and `worker` resolve once running, with `null`. */
  run(parsed: Parsed): Promise<number | null>
}

const JSON_OPTION = { json: { type: 'boolean' } } as const
const ENVIRONMENT = `Environment (the same as the example server's; every bad value is named at start):
  PORT, HOST               3000, localhost (another HOST needs API_KEYS, or AUTH=none)
  API_KEYS                 key:owner,… : the API wants Authorization: Bearer <key>, and
                           each owner sees only its own uploads and jobs
  AUTH                     none: serve without keys on a non-local HOST, on purpose
  ALLOWED_HOSTS            name,… a keyless API answers besides localhost and HOST
                           (other Host headers: 403); keyless, changes from another
                           site's page (Origin, Sec-Fetch-Site) are refused too
  RATE_LIMIT_UPLOADS       30 per owner and minute  (0: no limit)
  RATE_LIMIT_JOB_ACTIONS   60 per owner and minute, each of cancel, retry, delete,
                           webhook redeliver
  MAX_JOBS_PER_OWNER       10 jobs waiting or running per owner  (0: no cap)
  DATA_DIR                 ./.transcodekit (database, files, spooled uploads)
  DATABASE_URL             postgres://… instead of the embedded database (PGlite in
                           DATA_DIR/db); memory:// keeps nothing
  DATABASE_SCHEMA          transcodekit      QUEUE_SCHEMA     pgboss
  PGLITE_SHARED_BUFFERS    16MB              API_PREFIX       /api
  MAX_UPLOAD_BYTES         2147483648        LOG_LEVEL        info (JSON lines, pino)
  UPLOAD_IDLE_TIMEOUT_MS   30000: an upload body silent this long is cut  (0: off)
  WORKER                   true (false: API only, jobs run by \`transcodekit worker\`)
  WORKER_CONCURRENCY       1
  FFMPEG_PATH, FFPROBE_PATH  binaries (else on PATH, else the bundled ones)
  STORAGE                  local, or s3 with S3_BUCKET, S3_ENDPOINT, S3_REGION,
                           S3_FORCE_PATH_STYLE, S3_PREFIX
  ENGINE                   ffmpeg, elastic-transcoder (ET_PIPELINE_NAME, ET_ENDPOINT) or
                           mediaconvert (MEDIACONVERT_ROLE, MEDIACONVERT_ENDPOINT,
                           MEDIACONVERT_QUEUE); both need STORAGE=s3
  FILE_URL_SECRET          32+ bytes signing the file URLs (default: one kept in DATA_DIR)
  SNS_TOPIC_ARNS, AWS_REGION
  ET_SNS_TOPIC_ARNS        the only SNS topics an Elastic Transcoder API pipeline may
                           notify (none by default; never one of SNS_TOPIC_ARNS)
  WEBHOOK_URL              a receiver of signed webhooks (Standard Webhooks): every job
                           state change, asset.created, asset.deleted
  WEBHOOK_SECRET           its whsec_… secret (required with WEBHOOK_URL)
  WEBHOOK_ALLOW_PRIVATE    false (true: a receiver on a private or loopback address)
  WEBHOOK_RETRY_DELAY_MS   30000: first retry's wait, doubled up to an hour
  WEBHOOK_RETAIN_DAYS      30: deliveries that ended are deleted after this (0: kept)

Job limits, from the probe before a job starts, for every engine (0: no limit); past one,
the upload or retry answers 422 with its code:
  MAX_DURATION_SEC         14400 (4 h)                     TRANSCODEKIT_MEDIA_TOO_LONG
  MAX_FRAME_PIXELS         16777216 (4096×4096)            TRANSCODEKIT_FRAME_TOO_LARGE
  MAX_FRAME_RATE           240                             TRANSCODEKIT_FRAME_RATE_TOO_HIGH
  MAX_OUTPUT_BYTES         4294967296 (4 GiB, estimated)   TRANSCODEKIT_OUTPUT_TOO_LARGE
ffmpeg guards while it runs (ENGINE=ffmpeg; 0: off, but for the timeout); past one, the
job ends in error with its code:
  FFMPEG_TIMEOUT_SEC       21600 (6 h) wall clock          TIMEOUT
  FFMPEG_STALL_TIMEOUT_SEC 120 with no progress            STALLED
  FFMPEG_MAX_CPU_SEC       21600 CPU seconds               CPU_LIMIT
  FFMPEG_MAX_MEMORY_BYTES  4294967296 address space        MEMORY_LIMIT
  FFMPEG_MAX_OUTPUT_BYTES  8589934592 written              OUTPUT_TOO_LARGE`

const COMMANDS: Command[] = [
  {
    name: 'transcode',
    summary: 'transcode a file with ffmpeg, by preset',
    help: `Usage: transcodekit transcode <file> --preset <id|alias>... [--out DIR] [--force] [--json]

Transcodes <file> with ffmpeg into one output per preset, named
<file name>-<preset id>.<extension>, in one ffmpeg run. Outputs appear only once all of them
are complete: a failure leaves none behind. Shows a progress bar on a terminal and plain
lines otherwise.

Options:
  -p, --preset <name>  a preset id or alias (see \`transcodekit presets\`); repeat for more
  -o, --out <dir>      where the outputs go (default: the working folder; made if missing)
  -f, --force          overwrite outputs that exist
      --json           print one JSON document: the input's media and the outputs
  -h, --help           this help

On failure the exit code is 1 and the error's code is printed (UNSUPPORTED_MEDIA,
UNKNOWN_PRESET, INCOMPATIBLE_PRESET, DECODE_FAILED, …); 2 for a bad command line. Ctrl-C
stops ffmpeg, removes what it wrote, and exits 130.

Example:
  transcodekit transcode seed.mp3 --preset 1351620000001-300300 \\
    --preset 1351620000001-300110 --preset 1351620000001-100110 --out outputs`,
    options: {
      preset: { type: 'string', short: 'p', multiple: true },
      out: { type: 'string', short: 'o' },
      force: { type: 'boolean', short: 'f' },
      ...JSON_OPTION,
    },
    positionals: { min: 1, max: 1 },
    async run({ values, positionals }) {
      const presets = (values.preset as string[] | undefined) ?? []
      if (presets.length === 0) throw new UsageError('give at least one --preset')
      const { transcodeCommand } = await import('./transcode-command.ts')
      const controller = new AbortController()
      const abort = () => controller.abort()
      process.once('SIGINT', abort)
      process.once('SIGTERM', abort)
      try {
        const result = await transcodeCommand({
          file: positionals[0]!,
          presets,
          outDir: values.out as string | undefined,
          force: values.force === true,
          json: values.json === true,
          signal: controller.signal,
        })
        if (values.json) {
          print(result, true)
        } else {
          for (const output of result.outputs) {
            const facts = [
              output.size === null ? null : formatBytes(output.size),
              output.durationSec === null ? null : `${output.durationSec.toFixed(2)} s`,
            ].filter(Boolean)
            console.log(`${output.preset}: ${output.path} (${facts.join(', ')})`)
          }
        }
        return 0
      } finally {
        process.off('SIGINT', abort)
        process.off('SIGTERM', abort)
      }
    },
  },
  {
    name: 'presets',
    summary: 'list the presets: id, aliases, container, codecs',
    help: `Usage: transcodekit presets [--json]

Lists the built-in presets. Any id or alias names a preset in \`transcode --preset\` and in
the API's uploads.

Options:
      --json   print the presets as a JSON array (every field)
  -h, --help   this help`,
    options: { ...JSON_OPTION },
    positionals: { min: 0, max: 0 },
    async run({ values }) {
      const { presetRows, presetTable } = await import('./presets-command.ts')
      if (values.json) print(presetRows(), true)
      else console.log(presetTable())
      return 0
    },
  },
  {
    name: 'probe',
    summary: "print a media file's facts (ffprobe) as JSON",
    help: `Usage: transcodekit probe <file> [--json]

Prints what ffprobe learns about <file>: container, duration, bit rate and streams, with the
content type and extension transcodekit gives it. Only audio and video are read: anything
else fails with UNSUPPORTED_MEDIA.

Options:
      --json   one line of JSON (default: indented)
  -h, --help   this help`,
    options: { ...JSON_OPTION },
    positionals: { min: 1, max: 1 },
    async run({ values, positionals }) {
      const { probeCommand } = await import('./probe-command.ts')
      print(await probeCommand(positionals[0]!), values.json === true)
      return 0
    },
  },
  {
    name: 'serve',
    summary: 'run the server: web page, API, jobs (embedded database, local files)',
    help: `Usage: transcodekit serve [--port N] [--host NAME] [--data-dir DIR]

Runs the whole service: the web page at /, the API under /api (OpenAPI at /docs), and the
jobs, with nothing to set up: an embedded PostgreSQL (PGlite) and the files in
./.transcodekit. SIGTERM or Ctrl-C stops it gracefully (a second one at once).

Options:
      --port <n>        overrides PORT
      --host <name>     overrides HOST
      --data-dir <dir>  overrides DATA_DIR
  -h, --help            this help

${ENVIRONMENT}`,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
    },
    positionals: { min: 0, max: 0 },
    async run({ values }) {
      const { serve } = await import('./main.ts')
      await serve({ env: withOverrides(values) })
      return null
    },
  },
  {
    name: 'worker',
    summary: 'run jobs only, next to a server (same DATA_DIR or DATABASE_URL)',
    help: `Usage: transcodekit worker [--data-dir DIR] [--concurrency N]

Runs transcoding jobs, with no HTTP. Next to \`transcodekit serve\` on the same data folder it
attaches to that server's embedded database; with DATABASE_URL it runs on any machine that
shares the database and the storage (STORAGE=s3). Start the server with WORKER=false to leave
every job to workers. SIGTERM stops it: a running job is handed to the next worker.

Options:
      --data-dir <dir>   overrides DATA_DIR
      --concurrency <n>  overrides WORKER_CONCURRENCY
  -h, --help             this help

${ENVIRONMENT}`,
    options: {
      'data-dir': { type: 'string' },
      concurrency: { type: 'string' },
    },
    positionals: { min: 0, max: 0 },
    async run({ values }) {
      const { runWorker } = await import('./worker.ts')
      await runWorker({ env: withOverrides(values) })
      return null
    },
  },
  {
    name: 'migrate',
    summary: 'create or update the transcodekit tables on a PostgreSQL server',
    help: `Usage: transcodekit migrate [--database-url URL] [--schema NAME] [--json]

Applies the transcodekit migrations that have not run yet (the server and the worker also do
at start; this is for deployments that migrate as a step of their own).

Options:
      --database-url <url>  postgres://… (default: DATABASE_URL)
      --schema <name>       schema of the tables (default: DATABASE_SCHEMA, or transcodekit)
      --json                print the migrations as JSON
  -h, --help                this help`,
    options: {
      'database-url': { type: 'string' },
      schema: { type: 'string' },
      ...JSON_OPTION,
    },
    positionals: { min: 0, max: 0 },
    async run({ values }) {
      const url = (values['database-url'] as string | undefined) ?? process.env.DATABASE_URL
      if (!url) throw new UsageError('give --database-url (or set DATABASE_URL)')
      if (!/^postgres(ql)?:\/\//.test(url)) {
        throw new UsageError('--database-url must be a postgres:// or postgresql:// URL')
      }
      const schema =
        (values.schema as string | undefined) ?? (process.env.DATABASE_SCHEMA || 'transcodekit')
      const { migrateCommand } = await import('./migrate-command.ts')
      const results = await migrateCommand({ url, schema })
      if (values.json) print({ schema, migrations: results }, true)
      else if (results.length === 0) console.log(`schema ${schema}: up to date`)
      else for (const result of results) console.log(`${result.status}: ${result.name}`)
      return results.some((result) => result.status !== 'Success') ? 1 : 0
    },
  },
]

const MAIN_HELP = `Usage: transcodekit <command> [options]

Commands:
${COMMANDS.map((command) => `  ${command.name.padEnd(10)} ${command.summary}`).join('\n')}

Options:
  -h, --help     this help; \`transcodekit <command> --help\` for a command's
  -v, --version  the version

Exit codes: 0 done, 1 failed (the error's code is printed), 2 bad command line,
130 stopped by Ctrl-C.`

/**
 * Runs `transcodekit <args>`: resolves with the exit code, or `null` for a command that keeps
 * the process running (serve, worker). Errors are printed here, with their code.
 */
export async function runCli(args: string[]): Promise<number | null> {
  const [name, ...rest] = args
  const json = rest.includes('--json')
  try {
    if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
      console.log(MAIN_HELP)
      return name === undefined ? 2 : 0
    }
    if (name === '-v' || name === '--version') {
      console.log(version())
      return 0
    }
    const command = COMMANDS.find((candidate) => candidate.name === name)
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`)
    const parsed = parse(command, rest)
    if (parsed.values.help) {
      console.log(command.help)
      return 0
    }
    return await command.run(parsed)
  } catch (error) {
    return report(error, json, name)
  }
}

function parse(command: Command, args: string[]): Parsed {
  let parsed: Parsed
  try {
    parsed = parseArgs({
      args,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    })
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error))
  }
  if (parsed.values.help) return parsed
  const count = parsed.positionals.length
  if (count < command.positionals.min) {
    throw new UsageError(`transcodekit ${command.name} needs a file`)
  }
  if (count > command.positionals.max) {
    throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals.at(-1))}`)
  }
  return parsed
}

function report(error: unknown, json: boolean, name: string | undefined): number {
  const code =
    error instanceof TranscodeKitError
      ? error.code
      : typeof (error as { code?: unknown })?.code === 'string'
        ? (error as { code: string }).code
        : 'INTERNAL'
  const message = error instanceof Error ? error.message : String(error)
  const usage = error instanceof UsageError
  if (json) {
    print({ error: { code, message } }, true)
  } else {
    console.error(`transcodekit: error ${code}: ${message}`)
    if (usage) {
      const known = COMMANDS.some((command) => command.name === name)
      console.error(`see \`transcodekit ${known ? `${name} ` : ''}--help\``)
    }
  }
  // As a shell reports a command that Ctrl-C stopped.
  if (code === 'ABORTED') return 130
  return usage ? 2 : 1
}

/** `--port`, `--host`, `--data-dir`, `--concurrency` over the environment they stand for. */
function withOverrides(values: Values): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env }
  const map = {
    port: 'PORT',
    host: 'HOST',
    'data-dir': 'DATA_DIR',
    concurrency: 'WORKER_CONCURRENCY',
  }
  for (const [option, variable] of Object.entries(map)) {
    const value = values[option]
    if (typeof value === 'string') env[variable] = value
  }
  return env
}

function print(value: unknown, compact: boolean): void {
  console.log(compact ? JSON.stringify(value) : JSON.stringify(value, null, 2))
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit += 1
  }
  return `${value.toFixed(1)} ${units[unit]}`
}

function version(): string {
  const manifest = JSON.parse(
    readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
  ) as { version: string }
  return manifest.version
}
