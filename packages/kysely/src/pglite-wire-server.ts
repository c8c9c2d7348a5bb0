import { createServer, type Server, type Socket } from 'node:net'
import type { PGlite } from '@electric-sql/pglite'
import { ConnectionNames, frame } from './pglite-statement-names.ts'

/**
 * A PostgreSQL wire-protocol server in front of one PGlite database, so that `pg` pools (ours,
 * pg-boss's, a worker process's) can share it like a PostgreSQL server.
 *
 * PGlite is a single session. Connections take turns on it, and a turn never splits what the
 * protocol treats as one unit: a turn starts with a connection's next message and lasts until a
 * `Sync` or a simple `Query` has been answered with the session outside a transaction. So a
 * transaction runs from `BEGIN` to `COMMIT` with nobody else's statements inside it, and the
 * unnamed statement and portal of an extended query (Parse, Bind, Execute, Sync) are never
 * replaced by another connection's halfway. Transactions therefore run one after another: the
 * isolation of SERIALIZABLE, and an idle transaction holds up every other connection.
 *
 * A connection that goes away in the middle of its turn has its transaction rolled back, also
 * the implicit one of an extended query it never synced, and its prepared statements closed.
 * Each connection's statement and portal names are its own (see `ConnectionNames`).
 */
export interface PGliteWireServer {
  server: Server
  /** Open client connections. */
  readonly connections: number
  /** Stops listening and closes every connection (their transactions are rolled back). */
  close(): Promise<void>
}

// Requests that come before (or instead of) a startup message: length 8 or 16, then a code.
const SSL_REQUEST = 80_877_103
const GSSENC_REQUEST = 80_877_104
const CANCEL_REQUEST = 80_877_102
const PROTOCOL_3 = 196_608

// What ends an abandoned turn: an Execute of a portal that does not exist fails, which aborts
// an extended query's implicit transaction (a bare Sync would commit it), the Sync ends that,
// and the ROLLBACK ends an explicit transaction (a warning outside one).
const ABANDON = Buffer.concat([
  frame('E', Buffer.from('transcodekit_no_such_portal\0\0\0\0\0')),
  frame('S', Buffer.alloc(0)),
  frame('Q', Buffer.from('ROLLBACK\0')),
])
const SYNC = frame('S', Buffer.alloc(0))

/** Starts serving `db` on `listen` (a Unix socket path, or a port on 127.0.0.1). */
export async function servePGlite(
  db: PGlite,
  listen: { path: string } | { port: number; host?: string },
): Promise<PGliteWireServer> {
  const session = new SessionTurns(db)
  const sockets = new Set<Socket>()
  let connections = 0
  const server = createServer((socket) => {
    sockets.add(socket)
    const connection = new Connection(socket, session, new ConnectionNames(++connections))
    socket.on('close', () => {
      sockets.delete(socket)
      void connection.closed()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    const ready = () => {
      server.off('error', reject)
      resolve()
    }
    if ('path' in listen) server.listen(listen.path, ready)
    else server.listen(listen.port, listen.host ?? '127.0.0.1', ready)
  })
  return {
    server,
    get connections() {
      return sockets.size
    },
    async close() {
      // The session ends with the server: its statements need no closing one by one.
      session.ending = true
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const socket of sockets) socket.destroy()
      await closed
      await session.idle()
    },
  }
}

/** Who has the PGlite session now, and who waits for it, first come first served. */
class SessionTurns {
  readonly db: PGlite
  private owner: Connection | null = null
  private readonly waiting: Array<{ connection: Connection; start: () => void }> = []
  private drained: Array<() => void> = []
  /** The server is closing, and PGlite after it. */
  ending = false

  constructor(db: PGlite) {
    this.db = db
  }

  /** Resolves when `connection` has the session (at once if it has it already). */
  take(connection: Connection): Promise<void> {
    if (this.owner === connection) return Promise.resolve()
    if (this.owner === null) {
      this.owner = connection
      return Promise.resolve()
    }
    return new Promise((start) => this.waiting.push({ connection, start }))
  }

  /** Ends `connection`'s turn if the session is outside a transaction (or if `force`). */
  release(connection: Connection, force = false): void {
    if (this.owner !== connection) return
    if (!force && this.db.isInTransaction()) return
    const next = this.waiting.shift()
    this.owner = next?.connection ?? null
    next?.start()
    if (this.owner === null) for (const resolve of this.drained.splice(0)) resolve()
  }

  owns(connection: Connection): boolean {
    return this.owner === connection
  }

  /** Lets a closed connection that still waits for a turn go on without one. */
  leave(connection: Connection): void {
    const index = this.waiting.findIndex((entry) => entry.connection === connection)
    if (index >= 0) this.waiting.splice(index, 1)[0]!.start()
  }

  /** Resolves once nobody has the session. */
  idle(): Promise<void> {
    if (this.owner === null) return Promise.resolve()
    return new Promise((resolve) => this.drained.push(resolve))
  }

  /** Runs raw protocol messages on the session; its answer goes to `onData` as it comes. */
  async run(messages: Uint8Array, onData: (data: Uint8Array) => void): Promise<void> {
    await this.db.runExclusive(() => this.db.execProtocolRawStream(messages, { onRawData: onData }))
  }
}

/** One client connection: frames its messages and runs them on the session in turns. */
class Connection {
  private readonly socket: Socket
  private readonly session: SessionTurns
  private readonly names: ConnectionNames
  private buffered: Buffer = Buffer.alloc(0)
  private started = false
  /** Messages read since the last unit boundary, not yet run. */
  private batch: Buffer[] = []
  /** The chain of this connection's runs, one after another in the order they came. */
  private work: Promise<void> = Promise.resolve()
  private open = true

  constructor(socket: Socket, session: SessionTurns, names: ConnectionNames) {
    this.socket = socket
    this.session = session
    this.names = names
    socket.on('data', (data) => this.receive(data))
    socket.on('error', () => socket.destroy())
  }

  private receive(data: Buffer): void {
    this.buffered = this.buffered.length === 0 ? data : Buffer.concat([this.buffered, data])
    for (;;) {
      if (!this.started) {
        // Untyped messages: a length (including itself), then a code or the protocol version.
        if (this.buffered.length < 8) return
        const length = this.buffered.readInt32BE(0)
        if (length < 8 || length > 10_000) {
          this.fail()
          return
        }
        if (this.buffered.length < length) return
        const code = this.buffered.readInt32BE(4)
        const message = this.buffered.subarray(0, length)
        this.buffered = this.buffered.subarray(length)
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          this.socket.write('N') // no encryption on a local socket; the client goes on in clear
        } else if (code === CANCEL_REQUEST) {
          this.fail() // one statement at a time on one session: nothing to cancel
          return
        } else if (code === PROTOCOL_3) {
          this.started = true
          this.schedule([Buffer.from(message)], true)
        } else {
          this.fail()
          return
        }
        continue
      }
      if (this.buffered.length < 5) return
      const length = this.buffered.readInt32BE(1)
      if (length < 4) {
        this.fail()
        return
      }
      if (this.buffered.length < 1 + length) return
      const type = String.fromCharCode(this.buffered[0]!)
      const message = Buffer.from(this.buffered.subarray(0, 1 + length))
      this.buffered = this.buffered.subarray(1 + length)
      if (type === 'X') {
        this.socket.end()
        return
      }
      this.batch.push(this.names.scope(message))
      // Sync and Query end a unit of work; Flush asks for the answers so far (the turn goes on).
      if (type === 'S' || type === 'Q' || type === 'H') {
        this.schedule(this.batch.splice(0), type !== 'H')
      }
    }
  }

  /** Queues a run of `messages` after this connection's earlier ones. */
  private schedule(messages: Buffer[], endsUnit: boolean): void {
    this.work = this.work.then(async () => {
      if (!this.open) return
      await this.session.take(this)
      if (!this.open) return this.session.release(this, true)
      try {
        await this.session.run(Buffer.concat(messages), (data) => {
          // `data` is a view of PGlite's WebAssembly memory, which PGlite writes over next: the
          // socket may hold it until the client reads, so it gets a copy.
          if (this.open && data.length > 0) this.socket.write(Buffer.from(data))
        })
      } catch {
        this.fail()
        return
      }
      if (endsUnit) this.session.release(this)
    })
  }

  private fail(): void {
    this.socket.destroy()
  }

  /**
   * The socket closed: give the session back, rolling back a transaction left open, and close
   * the statements it prepared.
   */
  async closed(): Promise<void> {
    this.open = false
    this.session.leave(this)
    await this.work
    const midTurn = this.session.owns(this)
    const closes = this.session.ending ? [] : this.names.closeAll()
    if (!midTurn && closes.length === 0) return
    if (!midTurn) {
      await this.session.take(this)
      if (this.session.ending) return this.session.release(this, true)
    }
    try {
      const cleanup = [...(midTurn ? [ABANDON] : []), ...closes, ...(closes.length ? [SYNC] : [])]
      await this.session.run(Buffer.concat(cleanup), () => {})
    } finally {
      this.session.release(this, true)
    }
  }
}
