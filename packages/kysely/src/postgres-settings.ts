import { ConfigurationError } from '@transcodekit/core'

// Apart from pglite-open.ts, so that the server's process, which only starts the embedded
// database's process and checks its settings, never loads PGlite itself (~8 MiB).

/** Checks PostgreSQL settings given as `-c name=value` start parameters. */
export function checkPostgresSettings(settings: Record<string, string> = {}): void {
  for (const [name, value] of Object.entries(settings)) {
    if (!/^[a-z_][a-z0-9_.]*$/.test(name) || typeof value !== 'string' || /[\0\n]/.test(value)) {
      throw new ConfigurationError(`postgresSettings: invalid setting ${JSON.stringify(name)}`)
    }
  }
}
