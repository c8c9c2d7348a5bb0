import { expect, it } from 'vitest'
import { kyselyRepository, migrateToLatest } from '../src/index.ts'
import { TestDatabase } from './support/test-databases.ts'

it('embedded concurrent getJob', async () => {
  const database = new TestDatabase('embedded')
  const { db, schema } = await database.schema()
  const repo = kyselyRepository({ db, schema })
  const ids = Array.from({ length: 40 }, () => crypto.randomUUID())
  const results = await Promise.allSettled(ids.map((id) => repo.getJob(id)))
  console.log(
    results
      .filter((r) => r.status === 'rejected')
      .map((r) => String((r as any).reason))
      .slice(0, 3),
  )
  await database.close()
}, 60000)
