import { webhookStoreConformance } from '@transcodekit/core/testing'
import { afterAll } from 'vitest'
import { kyselyRepository } from '../src/index.ts'
import { type Backend, TestDatabase } from './support/test-databases.ts'

// The store as the repository offers it, on the schema migrated up to 0004.
for (const backend of ['pglite', 'postgres'] as const satisfies Backend[]) {
  const database = new TestDatabase(backend)
  afterAll(() => database.close())
  webhookStoreConformance(`kysely webhook store on ${backend}`, async () => {
    const { db, schema } = await database.schema()
    return {
      store: kyselyRepository({ db, schema }).webhookStore(),
      cleanup: () => database.dropSchema(schema),
    }
  })
}
