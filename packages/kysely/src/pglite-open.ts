import { PGlite } from '@electric-sql/pglite'
import { checkPostgresSettings } from './postgres-settings.ts'

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
