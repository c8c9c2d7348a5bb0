import { randomBytes } from 'node:crypto'
import { migrateToLatest, openDatabase } from '@transcodekit/kysely'
import { sql } from 'kysely'
import { afterAll } from 'vitest'
import { memoryEtStore } from '../src/index.ts'
import { kyselyEtStore } from '../src/kysely.ts'
import { etStoreConformance } from '../src/testing/index.ts'

etStoreConformance('memoryEtStore', async () => ({ store: memoryEtStore() }))

// The PostgreSQL server at DATABASE_URL, one schema per test, dropped after.
const opened = openDatabase({
  url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  maxConnections: 4,
})
afterAll(async () => (await opened).close())

etStoreConformance('kyselyEtStore on PostgreSQL', async () => {
  const { db } = await opened
  const schema = `tk_et_${randomBytes(5).toString('hex')}`
  await migrateToLatest(db, { schema })
  return {
    store: kyselyEtStore({ db, schema }),
    cleanup: async () => {
      await sql`drop schema ${sql.id(schema)} cascade`.execute(db)
    },
  }
})
