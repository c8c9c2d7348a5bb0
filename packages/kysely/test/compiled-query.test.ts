import { sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { compileOnce } from '../src/compiled-query.ts'
import { TestDatabase } from './support/test-databases.ts'

const A = '\0placeholder a'
const B = '\0placeholder b'

describe('compileOnce', () => {
  const database = new TestDatabase('postgres')
  afterAll(() => database.close())

  it('runs the query compiled once with the values of each run, also in a transaction', async () => {
    const db = await database.db()
    const query = compileOnce(
      db.selectNoFrom([sql<string>`${A}::text || '/' || ${B}::text`.as('joined')]),
      [A, B] as [a: string, b: string],
    )
    expect(query.sql).toContain('$1')
    expect((await query.run(db, 'x', 'y')).rows).toEqual([{ joined: 'x/y' }])
    expect((await query.run(db, 'z', 'w')).rows).toEqual([{ joined: 'z/w' }])
    const inTransaction = await db.transaction().execute(async (trx) => query.run(trx, '1', '2'))
    expect(inTransaction.rows).toEqual([{ joined: '1/2' }])
  })

  it('refuses a query whose parameters are not exactly the placeholders', async () => {
    const db = await database.db()
    // A value inlined in the SQL could not be replaced at run time.
    expect(() => compileOnce(db.selectNoFrom([sql.lit(A).as('a')]), [A])).toThrow(
      /compiled to parameters \[\], not the placeholders/,
    )
    // Another value than the placeholder, or in another order.
    expect(() => compileOnce(db.selectNoFrom([sql`${'other'}`.as('a')]), [A])).toThrow(
      /not the placeholders/,
    )
    expect(() =>
      compileOnce(db.selectNoFrom([sql`${B}`.as('b'), sql`${A}`.as('a')]), [A, B]),
    ).toThrow(/not the placeholders/)
  })
})
