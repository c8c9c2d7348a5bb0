import { setTimeout as delay } from 'node:timers/promises'
import {
  ConfigurationError,
  consoleLogger,
  errorText,
  JOB_STATES,
  type JobChangeNotice,
  type JobEventChannel,
  type JobState,
  type Logger,
} from '@transcodekit/core'
import pg from 'pg'

export interface PgJobEventChannelOptions {
  /** The PostgreSQL server every process of the app shares (`postgres://user@host/db`). */
  connectionString: string
  /**
   * The `LISTEN`/`NOTIFY` channel: the processes of one app share it, apps sharing a database
   * each take their own (lower-case letters, digits, `_`). @default 'transcodekit_jobs'
   */
  channel?: string
  /** Where lost connections and malformed notices are reported. @default consoleLogger() */
  logger?: Logger
  /** First wait before reconnecting a lost listener, doubled on each failure. @default 100 */
  reconnectMinMs?: number
  /** Longest wait between reconnection attempts. @default 5000 */
  reconnectMaxMs?: number
}

const CHANNEL_NAME = /^[a-z_][a-z0-9_]{0,62}$/
const CONNECT_TIMEOUT_MS = 5000
/** PostgreSQL's limit on a NOTIFY payload is 8000 bytes; ours are about 100. */
const MAX_PAYLOAD = 1000

/**
 * A `JobEventChannel` on PostgreSQL `LISTEN`/`NOTIFY`: one dedicated connection listens (and
 * reconnects with backoff when it is lost, logged), and notices are sent with `pg_notify` on a
 * one-connection pool. PostgreSQL delivers a notice to every listening process once the
 * sending statement commits.
 *
 * Needs a PostgreSQL server: the embedded database (PGlite behind a wire server) is one session
 * shared by all its connections, whose notifications go back to the connection that sent them,
 * so there the watchers' poll is what other processes see.
 */
export function pgJobEventChannel(options: PgJobEventChannelOptions): JobEventChannel {
  const settings = resolveOptions(options)
  const { logger } = settings
  const listeners = new Set<(notice: JobChangeNotice) => void>()
  // Bounded waits: while the server is unreachable, notices fail (logged by the caller) rather
  // than queue up behind a connection that never comes.
  const publisher = new pg.Pool({
    connectionString: settings.connectionString,
    max: 1,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: CONNECT_TIMEOUT_MS,
  })
  publisher.on('error', (error) => {
    logger.warn({ error: error.message }, 'transcodekit: job event publisher lost its connection')
  })
  const stop = new AbortController()
  let client: pg.Client | null = null
  let listening!: () => void
  const firstListen = new Promise<void>((resolve) => {
    listening = resolve
  })

  const deliver = (message: pg.Notification) => {
    if (message.channel !== settings.channel) return
    const notice = parseNotice(message.payload)
    if (!notice) {
      logger.warn(
        { channel: message.channel, payload: message.payload?.slice(0, 200) },
        'transcodekit: ignored a malformed job event notice',
      )
      return
    }
    for (const listener of listeners) listener(notice)
  }

  /** Connects and listens; resolves when that connection is lost (or the channel closed). */
  const listenOnce = async (onListening: () => void): Promise<void> => {
    const current = new pg.Client({
      connectionString: settings.connectionString,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    })
    // Kept for the client's life: a second `error` without a listener would end the process.
    const lost = new Promise<Error>((resolve) => {
      current.on('error', resolve)
      current.on('end', () => resolve(new Error('the connection ended')))
    })
    client = current
    try {
      await current.connect()
      current.on('notification', deliver)
      await current.query(`LISTEN ${current.escapeIdentifier(settings.channel)}`)
    } catch (error) {
      // The connection failed already (that error is thrown and logged): ending it is tidying.
      await current.end().catch(() => undefined)
      throw error
    }
    onListening()
    listening()
    const error = await Promise.race([lost, closed(stop.signal)])
    if (error) throw error
  }

  const loop = async () => {
    let wait = settings.reconnectMinMs
    let failures = 0
    while (!stop.signal.aborted) {
      try {
        await listenOnce(() => {
          if (failures > 0) {
            logger.info(
              { channel: settings.channel, failures },
              'transcodekit: job event listener back',
            )
          }
          wait = settings.reconnectMinMs
          failures = 0
        })
      } catch (error) {
        if (stop.signal.aborted) break
        failures++
        logger.warn(
          { channel: settings.channel, error: errorText(error), retryInMs: wait, failures },
          'transcodekit: job event listener lost its connection; reconnecting',
        )
        await delay(wait, undefined, { signal: stop.signal }).catch(() => undefined)
        wait = Math.min(wait * 2, settings.reconnectMaxMs)
      }
    }
  }
  const running = loop()

  return {
    async publish(notice) {
      const payload = JSON.stringify([notice.jobId, notice.state, notice.progress, notice.origin])
      if (Buffer.byteLength(payload) > MAX_PAYLOAD) {
        throw new ConfigurationError('a job event notice is too large for NOTIFY')
      }
      await publisher.query('SELECT pg_notify($1, $2)', [settings.channel, payload])
    },
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    ready: () => firstListen,
    async close() {
      if (stop.signal.aborted) return running
      stop.abort()
      listeners.clear()
      await client?.end().catch((error: unknown) => {
        logger.warn({ error: errorText(error) }, 'transcodekit: job event listener did not close')
      })
      await running
      await publisher.end()
    },
  }
}

function resolveOptions(options: PgJobEventChannelOptions) {
  const resolved = {
    connectionString: options.connectionString,
    channel: options.channel ?? 'transcodekit_jobs',
    logger: options.logger ?? consoleLogger(),
    reconnectMinMs: options.reconnectMinMs ?? 100,
    reconnectMaxMs: options.reconnectMaxMs ?? 5000,
  }
  if (typeof resolved.connectionString !== 'string' || resolved.connectionString === '') {
    throw new ConfigurationError('pgJobEventChannel: option "connectionString" is required')
  }
  if (!CHANNEL_NAME.test(resolved.channel)) {
    throw new ConfigurationError(
      'pgJobEventChannel: option "channel" must be 1 to 63 lower-case letters, digits or _',
    )
  }
  if (!(resolved.reconnectMinMs > 0) || !(resolved.reconnectMaxMs >= resolved.reconnectMinMs)) {
    throw new ConfigurationError(
      'pgJobEventChannel: options "reconnectMinMs" > 0 and "reconnectMaxMs" ≥ it',
    )
  }
  return resolved
}

/** Anyone who may connect to the database may NOTIFY: a notice is checked before it is used. */
function parseNotice(payload: string | undefined): JobChangeNotice | null {
  if (!payload || payload.length > MAX_PAYLOAD) return null
  let value: unknown
  try {
    value = JSON.parse(payload)
  } catch {
    return null
  }
  if (!Array.isArray(value) || value.length !== 4) return null
  const [jobId, state, progress, origin] = value
  if (typeof jobId !== 'string' || jobId.length > 100) return null
  if (!JOB_STATES.includes(state as JobState)) return null
  if (typeof progress !== 'number' || !Number.isFinite(progress)) return null
  if (typeof origin !== 'string' || origin.length > 100) return null
  return { jobId, state: state as JobState, progress, origin }
}

function closed(signal: AbortSignal): Promise<null> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(null)
    else signal.addEventListener('abort', () => resolve(null), { once: true })
  })
}
