import { PGlite } from '@electric-sql/pglite'
import { ConfigurationError } from '@transcodekit/core'

/** Checks PostgreSQL settings given as `-c name=value` start parameters. */
export function checkPostgresSettings(settings: Record<string, string> = {}): void {
  for (const [name, value] of Object.entries(settings)) {
    if (!/^[a-z_][a-z0-9_.]*$/.test(name) || typeof value !== 'string' || /[\0\n]/.test(value)) {
      throw new ConfigurationError(`postgresSettings: invalid setting ${JSON.stringify(name)}`)
    }
  }
}

/** Opens (and on first use, creates) the PGlite database in `dataDir`. */
export async function openPGlite(
  dataDir: string,
  settings: Record<string, string> = {},
): Promise<PGlite> {
  checkPostgresSettings(settings)
  const entries = Object.entries(settings)
  const pglite = new PGlite(
    dataDir,
    entries.length > 0
      ? {
          startParams: [
            ...PGlite.defaultStartParams,
            ...entries.flatMap(([name, value]) => ['-c', `${name}=${value}`]),
          ],
        }
      : {},
  )
  await pglite.waitReady
  return pglite
}
