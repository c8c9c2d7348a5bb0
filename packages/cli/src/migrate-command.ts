import { migrateToLatest, openDatabase } from '@transcodekit/kysely'

export interface MigrationRun {
  name: string
  status: 'Success' | 'Error' | 'NotExecuted'
}

/** `transcodekit migrate`: the migrations that ran now (none when the schema is up to date). */
export async function migrateCommand(options: {
  url: string
  schema: string
}): Promise<MigrationRun[]> {
  const { db, close } = await openDatabase({ url: options.url, maxConnections: 1 })
  try {
    const results = await migrateToLatest(db, { schema: options.schema })
    return results.map((result) => ({ name: result.migrationName, status: result.status }))
  } finally {
    await close()
  }
}
