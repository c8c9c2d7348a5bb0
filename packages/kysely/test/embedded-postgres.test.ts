import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConfigurationError } from '@transcodekit/core'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type EmbeddedPostgres,
  embeddedPostgresUrl,
  pgBossQueue,
  startEmbeddedPostgres,
} from '../src/index.ts'
import { waitFor } from './support/test-databases.ts'

const PID_FILE = 'transcodekit-embedded.pid'

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('startEmbeddedPostgres: PGlite in a process of its own, shared over the wire protocol', () => {
  let dir: string
  let embedded: EmbeddedPostgres
  let pool: pg.Pool

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tk-embedded-'))
    embedded = await startEmbeddedPostgres({
      dataDir: join(dir, 'db'),
      postgresSettings: { shared_buffers: '16MB' },
    })
    pool = new pg.Pool({ connectionString: embedded.url, max: 8 })
    await pool.query('create table counter (id int primary key, n int not null)')
    await pool.query('create table item (id int primary key)')
  })
  afterAll(async () => {
    await pool?.end()
    await embedded?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('runs in another process, on a socket in its folder, with the settings it was given', async () => {
    expect(embedded.pid).not.toBe(process.pid)
    expect(isRunning(embedded.pid)).toBe(true)
    expect(embedded.url).toBe(embeddedPostgresUrl(join(dir, 'db')))
    expect(await readdir(join(dir, 'db'))).toEqual(
      expect.arrayContaining(['PG_VERSION', '.s.PGSQL.5432', PID_FILE]),
    )
    expect((await readFile(join(dir, 'db', PID_FILE), 'utf8')).trim()).toBe(String(embedded.pid))
    const { rows } = await pool.query('show shared_buffers')
    expect(rows[0].shared_buffers).toBe('16MB')
  })

  it('answers many connections at once, each with its own parameters and results', async () => {
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        pool.query('select $1::int * 3 as tripled, $2::text as label', [i, `n${i}`]),
      ),
    )
    expect(answers.map(({ rows }) => rows[0])).toEqual(
      Array.from({ length: 200 }, (_, i) => ({ tripled: i * 3, label: `n${i}` })),
    )
  })

  it('runs transactions one after another: concurrent read-modify-writes lose no update', async () => {
    await pool.query('insert into counter values (1, 0)')
    await Promise.all(
      Array.from({ length: 30 }, async () => {
        const client = await pool.connect()
        try {
          await client.query('begin')
          const { rows } = await client.query('select n from counter where id = 1')
          // Another connection's statements would get in here if turns split transactions.
          await new Promise((resolve) => setTimeout(resolve, 2))
          await client.query('update counter set n = $1 where id = 1', [rows[0].n + 1])
          await client.query('commit')
        } finally {
          client.release()
        }
      }),
    )
    const { rows } = await pool.query('select n from counter where id = 1')
    expect(rows[0].n).toBe(30)
  })

  it('holds other connections while a transaction is open, and they never see it half-done', async () => {
    const writer = await pool.connect()
    try {
      await writer.query('begin')
      await writer.query('insert into item values (1)')
      let readerDone = false
      const reader = pool.query('select count(*)::int as n from item').then((result) => {
        readerDone = true
        return result.rows[0].n as number
      })
      await new Promise((resolve) => setTimeout(resolve, 200))
      expect(readerDone).toBe(false)
      await writer.query('insert into item values (2)')
      await writer.query('commit')
      expect(await reader).toBe(2)
    } finally {
      writer.release()
    }
  })

  it('rolls back the open transaction of a connection that goes away, and the others go on', async () => {
    const lost = new pg.Client({ connectionString: embedded.url })
    await lost.connect()
    lost.on('error', () => {})
    await lost.query('begin')
    await lost.query('insert into item values (100)')
    const waiting = pool.query('select count(*)::int as n from item where id = 100')
    // The client's socket closes in the middle of its transaction.
    ;(
      lost as unknown as { connection: { stream: { destroy(): void } } }
    ).connection.stream.destroy()
    expect((await waiting).rows[0].n).toBe(0)
    expect((await pool.query('select 1 as one')).rows[0].one).toBe(1)
  })

  it('gives a failed transaction back cleanly: the error to its client, the session to the rest', async () => {
    const client = await pool.connect()
    try {
      await client.query('begin')
      await expect(client.query('insert into item values (null)')).rejects.toThrow(/null value/)
      await expect(client.query('select 1')).rejects.toThrow(/current transaction is aborted/)
      await client.query('rollback')
    } finally {
      client.release()
    }
    expect((await pool.query('select count(*)::int as n from item')).rows[0].n).toBe(2)
  })

  it('sends a large result whole, however slowly the client reads it', async () => {
    // About 13 MB of rows: far more than a socket takes at once, so most of it waits in Node
    // while PGlite goes on writing.
    const { rows } = await pool.query(
      `select i, repeat(md5(i::text), 8) as pad from generate_series(1, 50000) as i`,
    )
    expect(rows).toHaveLength(50_000)
    expect(rows.every((row, index) => row.i === index + 1 && row.pad.length === 256)).toBe(true)
  })

  it('rolls back an extended query that a dropped connection never synced', async () => {
    const frame = (type: string, body: string) => {
      const bytes = Buffer.from(body, 'latin1')
      const framed = Buffer.alloc(5 + bytes.length)
      framed.write(type, 0)
      framed.writeInt32BE(4 + bytes.length, 1)
      bytes.copy(framed, 5)
      return framed
    }
    const params = Buffer.from('user\0postgres\0database\0postgres\0\0')
    const startup = Buffer.alloc(8 + params.length)
    startup.writeInt32BE(8 + params.length, 0)
    startup.writeInt32BE(196_608, 4)
    params.copy(startup, 8)
    const socket = createConnection(join(dir, 'db', '.s.PGSQL.5432'))
    const received = () => once(socket, 'data')
    socket.write(startup)
    await received()
    // Parse, Bind, Execute an insert, then Flush: it runs, and its answer comes, but no Sync.
    socket.write(
      Buffer.concat([
        frame('P', '\0insert into item values (500)\0\0\0'),
        frame('B', '\0\0\0\0\0\0\0\0'),
        frame('E', '\0\0\0\0\0'),
        frame('H', ''),
      ]),
    )
    const [answer] = (await received()) as [Buffer]
    expect(answer.includes(Buffer.from('INSERT 0 1'))).toBe(true)
    socket.destroy()
    const { rows } = await pool.query('select count(*)::int as n from item where id = 500')
    expect(rows[0].n).toBe(0)
  })

  it('carries a pg-boss queue: each message delivered once', async () => {
    const queue = pgBossQueue({
      connectionString: embedded.url,
      schema: 'boss',
      pollingIntervalSeconds: 0.5,
    })
    try {
      // Sent before anyone works: the second `a` finds the first still waiting.
      for (const jobId of ['a', 'b', 'c', 'a']) await queue.send({ jobId })
      const seen: string[] = []
      await queue.work(async ({ jobId }) => {
        seen.push(jobId)
      })
      await waitFor(
        async () => seen.length,
        (n) => n >= 3,
        { what: 'three deliveries' },
      )
      await new Promise((resolve) => setTimeout(resolve, 1000))
      expect(seen.sort()).toEqual(['a', 'b', 'c'])
    } finally {
      await queue.close()
    }
  })

  it('refuses a second start on the same folder while the first runs', async () => {
    const second = startEmbeddedPostgres({ dataDir: join(dir, 'db') })
    await expect(second).rejects.toThrow(ConfigurationError)
    await expect(second).rejects.toThrow(`in use by process ${embedded.pid}`)
    // The first one is untouched.
    expect((await pool.query('select n from counter')).rows[0].n).toBe(30)
  })
})

describe('the embedded database process stops with its owner', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tk-embedded-owner-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('closes cleanly on close(); the folder reopens with its data', async () => {
    const dataDir = join(dir, 'close')
    const first = await startEmbeddedPostgres({ dataDir })
    const client = new pg.Client({ connectionString: first.url })
    await client.connect()
    await client.query('create table kept (v text)')
    await client.query(`insert into kept values ('before restart')`)
    await client.end()
    await first.close()
    await first.close()
    expect(isRunning(first.pid)).toBe(false)
    expect(await readdir(dataDir)).not.toContain(PID_FILE)
    expect(await readdir(dataDir)).not.toContain('.s.PGSQL.5432')

    const second = await startEmbeddedPostgres({ dataDir })
    try {
      const reader = new pg.Client({ connectionString: second.url })
      await reader.connect()
      expect((await reader.query('select v from kept')).rows).toEqual([{ v: 'before restart' }])
      await reader.end()
    } finally {
      await second.close()
    }
  })

  it('stops when its owner is killed (SIGKILL), and a new owner takes the folder over', async () => {
    const dataDir = join(dir, 'killed')
    const owner = join(dir, 'owner.ts')
    const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url))
    await writeFile(
      owner,
      `import { startEmbeddedPostgres } from ${JSON.stringify(entry)}\n` +
        `const e = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(dataDir)} })\n` +
        `console.log('PID ' + e.pid)\n` +
        'setInterval(() => {}, 1000)\n',
    )
    const child = spawn(process.execPath, [owner], { stdio: ['ignore', 'pipe', 'inherit'] })
    const databasePid = await new Promise<number>((resolve, reject) => {
      let out = ''
      child.stdout!.on('data', (data: Buffer) => {
        out += data.toString()
        const match = /PID (\d+)/.exec(out)
        if (match) resolve(Number(match[1]))
      })
      child.once('exit', (code) => reject(new Error(`owner exited with ${code}: ${out}`)))
    })
    expect(isRunning(databasePid)).toBe(true)
    child.kill('SIGKILL')
    await waitFor(
      async () => isRunning(databasePid),
      (running) => !running,
      { what: 'the database process to stop', timeoutMs: 15_000 },
    )
    expect(await readdir(dataDir)).not.toContain(PID_FILE)

    const next = await startEmbeddedPostgres({ dataDir })
    await next.close()
  })

  it('replaces a pid file that a crashed process left behind', async () => {
    const dataDir = join(dir, 'stale')
    const first = await startEmbeddedPostgres({ dataDir })
    await first.close()
    // A pid no process has (beyond pid_max), as after a crash and a reboot.
    await writeFile(join(dataDir, PID_FILE), '4194305\n')
    const second = await startEmbeddedPostgres({ dataDir })
    try {
      expect((await readFile(join(dataDir, PID_FILE), 'utf8')).trim()).toBe(String(second.pid))
    } finally {
      await second.close()
    }
  })

  it('is not kept from its folder by a pid file naming a live process that does not hold it', async () => {
    const dataDir = join(dir, 'reused-pid')
    const first = await startEmbeddedPostgres({ dataDir })
    await first.close()
    // After a container restart, pids repeat: the file may name any running process.
    await writeFile(join(dataDir, PID_FILE), `${process.pid}\n`)
    const second = await startEmbeddedPostgres({ dataDir })
    await second.close()
  })

  it('lets one of two simultaneous starts on a new folder have it, and refuses the other', async () => {
    const dataDir = join(dir, 'race')
    const results = await Promise.allSettled([
      startEmbeddedPostgres({ dataDir }),
      startEmbeddedPostgres({ dataDir }),
    ])
    const winners = results.filter((result) => result.status === 'fulfilled')
    const losers = results.filter((result) => result.status === 'rejected')
    expect(winners).toHaveLength(1)
    expect(losers).toHaveLength(1)
    expect(losers[0]!.reason).toBeInstanceOf(ConfigurationError)
    expect(String(losers[0]!.reason)).toMatch(/in use by/)
    const winner = winners[0]!.value
    try {
      const client = new pg.Client({ connectionString: winner.url })
      await client.connect()
      expect((await client.query('select 41 + 1 as n')).rows[0].n).toBe(42)
      await client.end()
    } finally {
      await winner.close()
    }
  })

  it('refuses bad options before starting anything', async () => {
    await expect(startEmbeddedPostgres({ dataDir: '' })).rejects.toThrow(ConfigurationError)
    await expect(
      startEmbeddedPostgres({ dataDir: join(dir, 'bad'), postgresSettings: { 'a;b': '1' } }),
    ).rejects.toThrow(/invalid setting/)
    await expect(startEmbeddedPostgres({ dataDir: join(dir, 'x'.repeat(120)) })).rejects.toThrow(
      /socket path would be longer/,
    )
    expect(await readdir(dir)).not.toContain('bad')
  })
})
