import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { openAsBlob } from 'node:fs'
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeCorruptMedia, makeTone, probe } from '@transcodekit/core/testing'
import { openDatabase } from '@transcodekit/kysely'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BIN, followJob, type RunningServer, startServer } from './server-process.ts'

/**
 * Every command through the bin, as a child process from the sources (`node src/bin.ts …`),
 * with stdout a pipe: what a script calling `transcodekit` sees.
 */
const SEED_PRESETS = ['1351620000001-300300', '1351620000001-300110', '1351620000001-100110']
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function cli(args: string[], options: { cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: options.cwd, env: { ...process.env }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? ((error as { code?: unknown }).code as number | null) : 0
        resolve({ code: typeof code === 'number' ? code : null, stdout, stderr })
      },
    )
  })
}

let dir: string
let seed: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'transcodekit-cli-'))
  seed = await makeTone(join(dir, 'seed.mp3'), { seconds: 3, format: 'mp3' })
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('transcodekit --help', () => {
  it('describes every command, and each command its options', async () => {
    const main = await cli(['--help'])
    expect(main.code).toBe(0)
    for (const name of ['transcode', 'presets', 'probe', 'serve', 'worker', 'migrate']) {
      expect(main.stdout).toContain(`  ${name} `)
      const help = await cli([name, '--help'])
      expect(help.code, help.stderr).toBe(0)
      expect(help.stdout).toContain(`Usage: transcodekit ${name}`)
    }
    expect((await cli(['transcode', '-h'])).stdout).toContain('--preset')
    expect((await cli(['serve', '--help'])).stdout).toContain('DATA_DIR')
    expect((await cli(['migrate', '--help'])).stdout).toContain('--database-url')
  })

  it('answers a bad command line with exit code 2 and the way to the help', async () => {
    const unknown = await cli(['transcodee'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('error USAGE: unknown command "transcodee"')
    const option = await cli(['presets', '--colour'])
    expect(option.code).toBe(2)
    expect(option.stderr).toContain("Unknown option '--colour'")
    expect(option.stderr).toContain('transcodekit presets --help')
    // serve's options stand for its environment variables, checked the same way.
    const port = await cli(['serve', '--port', 'eighty', '--data-dir', join(dir, 'flags')])
    expect(port.code).toBe(1)
    expect(port.stderr).toContain('PORT must be an integer from 0 to 65535 (got "eighty")')
    const noPreset = await cli(['transcode', seed])
    expect(noPreset.code).toBe(2)
    expect(noPreset.stderr).toContain('--preset')
  })
})

describe('transcodekit presets', () => {
  it('prints a table of id, aliases, container and codecs', async () => {
    const { code, stdout } = await cli(['presets'])
    expect(code).toBe(0)
    const lines = stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^ID\s+ALIASES\s+CONTAINER\s+CODECS$/)
    expect(lines).toContainEqual(
      expect.stringMatching(/^wav\s+1351620000001-300300, wav-44k\s+wav \(\.wav\)\s+pcm_s16le$/),
    )
    expect(lines).toContainEqual(
      expect.stringMatching(/^aac-256k\s+1351620000001-100110, m4a\s+mp4 \(\.m4a\)\s+aac 256k$/),
    )
    expect(lines).toContainEqual(expect.stringMatching(/^mp4-720p\s.*h264 ≤1280×720 \+ aac 160k$/))
    // Columns line up: every row starts its aliases where the header does.
    const aliasesAt = lines[0]!.indexOf('ALIASES')
    for (const line of lines.slice(1)) expect(line[aliasesAt - 1]).toBe(' ')
  })

  it('prints every preset as JSON with --json', async () => {
    const { code, stdout } = await cli(['presets', '--json'])
    expect(code).toBe(0)
    const presets = JSON.parse(stdout) as Array<{ id: string; aliases?: string[] }>
    expect(presets.length).toBeGreaterThan(10)
    const ids = presets.flatMap((preset) => [preset.id, ...(preset.aliases ?? [])])
    expect(ids).toEqual(expect.arrayContaining([...SEED_PRESETS, 'wav', 'flac', 'aac-256k']))
  })
})

describe('transcodekit probe', () => {
  it('prints the media facts as JSON', async () => {
    const { code, stdout, stderr } = await cli(['probe', seed, '--json'])
    expect(code, stderr).toBe(0)
    const facts = JSON.parse(stdout)
    expect(facts).toMatchObject({
      path: seed,
      formatName: 'mp3',
      contentType: 'audio/mpeg',
      extension: 'mp3',
      streams: [{ type: 'audio', codec: 'mp3', sampleRate: 44_100, channels: 2 }],
    })
    expect(facts.durationSec).toBeGreaterThan(2.9)
    expect(facts.durationSec).toBeLessThan(3.2)
    // Without --json: the same facts, indented.
    const indented = await cli(['probe', seed])
    expect(JSON.parse(indented.stdout)).toEqual(facts)
    expect(indented.stdout).toContain('\n  "formatName": "mp3"')
  })

  it('fails with the error code on a file that is not media', async () => {
    const text = join(dir, 'notes.mp3')
    await writeFile(text, 'these are notes, not music\n'.repeat(50))
    const { code, stderr } = await cli(['probe', text])
    expect(code).toBe(1)
    expect(stderr).toContain('error UNSUPPORTED_MEDIA')
    const missing = await cli(['probe', join(dir, 'nowhere.mp3'), '--json'])
    expect(missing.code).toBe(1)
    expect(JSON.parse(missing.stdout).error.code).toBe('NOT_FOUND')
  })
})

describe('transcodekit transcode', () => {
  it('writes the three outputs of the seed job, checked with ffprobe', async () => {
    const out = join(dir, 'seed-out')
    const args = SEED_PRESETS.flatMap((preset) => ['--preset', preset])
    const { code, stdout, stderr } = await cli(['transcode', seed, ...args, '--out', out])
    expect(code, stderr).toBe(0)
    // Piped: plain progress lines, then one line per output.
    expect(stdout).toMatch(/^transcoding 0%$/m)
    expect(stdout).toMatch(/^transcoding 100%$/m)
    expect(stdout).not.toContain('\r')
    expect(stdout).toContain(`wav: ${join(out, 'seed-wav.wav')}`)

    expect((await readdir(out)).sort()).toEqual([
      'seed-aac-256k.m4a',
      'seed-flac.flac',
      'seed-wav.wav',
    ])
    const wav = await probe(join(out, 'seed-wav.wav'))
    expect(wav.format.format_name).toBe('wav')
    expect(wav.streams[0]).toMatchObject({ codec_name: 'pcm_s16le', sample_rate: '44100' })
    const flac = await probe(join(out, 'seed-flac.flac'))
    expect(flac.format.format_name).toBe('flac')
    expect(flac.streams[0]).toMatchObject({ codec_name: 'flac', channels: 2 })
    const m4a = await probe(join(out, 'seed-aac-256k.m4a'))
    expect(m4a.format.format_name).toContain('mp4')
    expect(m4a.streams[0]).toMatchObject({ codec_name: 'aac', sample_rate: '44100' })
    for (const result of [wav, flac, m4a]) {
      expect(Number(result.format.duration)).toBeGreaterThan(2.9)
      expect(Number(result.format.duration)).toBeLessThan(3.2)
    }
    // Kbit/s of the 256k AAC, within what an encoder does on 3 s of noise and tones.
    expect(Number(m4a.streams[0]!.bit_rate) / 1000).toBeGreaterThan(180)
    expect(Number(m4a.streams[0]!.bit_rate) / 1000).toBeLessThan(300)

    // An output that exists stops the next run, unless --force.
    const again = await cli(['transcode', seed, ...args, '--out', out])
    expect(again.code).toBe(1)
    expect(again.stderr).toContain('error OUTPUT_EXISTS')
    const forced = await cli(['transcode', seed, '-p', 'flac', '-o', out, '--force', '--json'])
    expect(forced.code, forced.stderr).toBe(0)
    const result = JSON.parse(forced.stdout)
    expect(result).toMatchObject({
      input: seed,
      media: { formatName: 'mp3' },
      outputs: [{ preset: 'flac', path: join(out, 'seed-flac.flac') }],
    })
    expect(result.outputs[0].size).toBeGreaterThan(1000)
    expect(result.outputs[0].durationSec).toBeGreaterThan(2.9)
    // No work folder is left next to the outputs.
    expect((await readdir(out)).filter((name) => name.startsWith('.'))).toEqual([])
  })

  it('exits 1 with the error code, and writes nothing, when the input is a text file named .mp3', async () => {
    const text = join(dir, 'letter.mp3')
    await writeFile(text, 'Dear reader, this is not an mp3.\n'.repeat(100))
    const out = join(dir, 'text-out')
    const { code, stdout, stderr } = await cli([
      'transcode',
      text,
      ...SEED_PRESETS.flatMap((preset) => ['--preset', preset]),
      '--out',
      out,
    ])
    expect(code).toBe(1)
    expect(stderr).toMatch(/^transcodekit: error UNSUPPORTED_MEDIA: /m)
    expect(stdout).toBe('')
    expect(await readdir(out).catch(() => [])).toEqual([])

    const json = await cli(['transcode', text, '--preset', 'wav', '--out', out, '--json'])
    expect(json.code).toBe(1)
    expect(JSON.parse(json.stdout)).toEqual({
      error: { code: 'UNSUPPORTED_MEDIA', message: expect.any(String) },
    })
  })

  it('exits 1 with DECODE_FAILED, and leaves no output and no work folder, when ffmpeg cannot decode', async () => {
    const corrupt = await makeCorruptMedia(join(dir, 'corrupt.m4a'))
    const out = join(dir, 'corrupt-out')
    const { code, stdout, stderr } = await cli([
      'transcode',
      corrupt,
      ...SEED_PRESETS.flatMap((preset) => ['--preset', preset]),
      '--out',
      out,
    ])
    expect(code).toBe(1)
    expect(stderr).toMatch(/^transcodekit: error DECODE_FAILED: /m)
    expect(stdout).not.toContain(': /')
    expect(await readdir(out)).toEqual([])
  })

  it('stops ffmpeg, removes its work and exits 130 with ABORTED on Ctrl-C', async () => {
    // An "ffmpeg" that records its pid, then runs until it is stopped: a long transcode.
    const fake = join(dir, 'ffmpeg-runs.sh')
    const pidFile = join(dir, 'ffmpeg-runs.pid')
    await writeFile(fake, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 120\n`)
    await chmod(fake, 0o755)
    const out = join(dir, 'aborted-out')
    const child = spawn(process.execPath, [BIN, 'transcode', seed, '-p', 'wav', '-o', out], {
      env: { ...process.env, FFMPEG_PATH: fake },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (data: Buffer) => {
      stderr += data.toString()
    })
    const closed = once(child, 'close')
    const deadline = Date.now() + 30_000
    let pid = ''
    while (pid === '' && Date.now() < deadline) {
      pid = (await readFile(pidFile, 'utf8').catch(() => '')).trim()
      if (pid === '') await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(pid).not.toBe('')
    child.kill('SIGINT')
    const [code] = await closed
    expect(code).toBe(130)
    expect(stderr).toContain('error ABORTED')
    expect(() => process.kill(Number(pid), 0)).toThrow()
    expect(await readdir(out)).toEqual([])
  })

  it('names an unknown or incompatible preset by its code', async () => {
    const out = join(dir, 'bad-preset-out')
    const unknown = await cli(['transcode', seed, '--preset', 'wav', '--preset', 'vhs', '-o', out])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain('error UNKNOWN_PRESET: unknown preset "vhs"')
    const video = await cli(['transcode', seed, '--preset', 'mp4-720p', '-o', out])
    expect(video.code).toBe(1)
    expect(video.stderr).toContain('error INCOMPATIBLE_PRESET')
    expect(await readdir(out).catch(() => [])).toEqual([])
  })

  it('draws a progress bar on a terminal', async () => {
    const out = join(dir, 'tty-out')
    await mkdir(out)
    // `script` gives the command a pseudo-terminal, as a person running it has.
    const command = [process.execPath, BIN, 'transcode', seed, '-p', 'wav', '-o', out]
      .map((word) => `'${word}'`)
      .join(' ')
    const run = await new Promise<Run>((resolve) => {
      execFile(
        'script',
        ['-qec', command, '/dev/null'],
        { env: { ...process.env, COLUMNS: '80' } },
        (error, stdout, stderr) => resolve({ code: error ? 1 : 0, stdout, stderr }),
      )
    })
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toMatch(/transcoding \[#{10,}\] 100%/)
    expect(run.stdout).toContain('\r')
    expect(run.stdout).not.toMatch(/^transcoding \d+%/m)
    expect(await readdir(out)).toEqual(['seed-wav.wav'])
  })
})

describe('transcodekit serve', () => {
  let server: RunningServer | null = null
  afterAll(async () => {
    await server?.stop('SIGKILL')
  })

  it("answers the seed's job over HTTP, with its embedded database and local files", async () => {
    server = await startServer({ DATA_DIR: join(dir, 'serve-data') })
    const form = new FormData()
    for (const preset of SEED_PRESETS) form.append('presets', preset)
    form.append('file', await openAsBlob(seed, { type: 'audio/mpeg' }), 'seed.mp3')
    const created = await fetch(`${server.url}/api/uploads`, { method: 'POST', body: form })
    expect(created.status).toBe(201)
    const { job } = await created.json()
    const done = await followJob(server.url, job.id)
    expect(done.state, done.errorMessage ?? '').toBe('complete')
    expect(done.outputs.map((output) => output.presetId).sort()).toEqual([
      'aac-256k',
      'flac',
      'wav',
    ])
    const types: Record<string, string> = {
      wav: 'audio/wav',
      flac: 'audio/flac',
      'aac-256k': 'audio/mp4',
    }
    for (const output of done.outputs) {
      const response = await fetch(`${server.url}${output.url}`)
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toBe(types[output.presetId])
      const file = join(dir, `served-${output.presetId}`)
      await writeFile(file, Buffer.from(await response.arrayBuffer()))
      const facts = await probe(file)
      expect(Number(facts.format.duration)).toBeGreaterThan(2.9)
    }
    expect(await server.stop('SIGTERM'), server.output().slice(-2000)).toBe(0)
    server = null
  }, 120_000)
})

describe('transcodekit migrate', () => {
  const schema = `cli_migrate_${randomBytes(4).toString('hex')}`
  afterAll(async () => {
    const { db, close } = await openDatabase({ url: DATABASE_URL, maxConnections: 1 })
    await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
    await close()
  })

  it('creates the tables on PostgreSQL, then finds nothing to do', async () => {
    const first = await cli([
      'migrate',
      '--database-url',
      DATABASE_URL,
      '--schema',
      schema,
      '--json',
    ])
    expect(first.code, first.stderr).toBe(0)
    const applied = JSON.parse(first.stdout)
    expect(applied.schema).toBe(schema)
    expect(applied.migrations.length).toBeGreaterThan(0)
    for (const migration of applied.migrations) expect(migration.status).toBe('Success')

    const { db, close } = await openDatabase({ url: DATABASE_URL, maxConnections: 1 })
    try {
      const tables = await sql<{ table_name: string }>`
        select table_name from information_schema.tables where table_schema = ${schema}
      `.execute(db)
      expect(tables.rows.map((row) => row.table_name)).toEqual(
        expect.arrayContaining(['transcodekit_migration']),
      )
      expect(tables.rows.length).toBeGreaterThan(2)
    } finally {
      await close()
    }

    const second = await cli(['migrate', '--database-url', DATABASE_URL, '--schema', schema])
    expect(second.code, second.stderr).toBe(0)
    expect(second.stdout.trim()).toBe(`schema ${schema}: up to date`)

    const bad = await cli(['migrate', '--database-url', 'mysql://x'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('error USAGE')
  })
})
