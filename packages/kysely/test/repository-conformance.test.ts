import { repositoryConformance } from '@transcodekit/core/testing'
import { afterAll } from 'vitest'
import { kyselyRepository } from '../src/index.ts'
import { type Backend, TestDatabase } from './support/test-databases.ts'

// One database per backend for the file; every test gets a schema of its own in it.
for (const backend of ['pglite', 'embedded', 'postgres'] as const satisfies Backend[]) {
  const database = new TestDatabase(backend)
  afterAll(() => database.close())
  repositoryConformance(`kyselyRepository on ${backend}`, async () => {
    const { db, schema } = await database.schema()
    return {
      repository: kyselyRepository({ db, schema }),
      cleanup: () => database.dropSchema(schema),
    }
  })
}
