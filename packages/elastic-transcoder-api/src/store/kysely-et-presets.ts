import type { Owner, Preset } from '@transcodekit/core'
import { type ColumnType, type Kysely, type Selectable, sql } from 'kysely'
import type { EtPresetRecord } from './et-store.ts'

type Json<T> = ColumnType<T, string, string>

export interface EtPresetsTable {
  id: string
  owner: string
  name: string
  settings: Json<Record<string, unknown>>
  preset: Json<Preset>
  created_at: ColumnType<Date, Date, Date>
}

function toPreset(row: Selectable<EtPresetsTable>): EtPresetRecord {
  return {
    id: row.id,
    owner: row.owner,
    name: row.name,
    settings: row.settings,
    preset: row.preset,
    createdAt: row.created_at,
  }
}

/** The custom-preset half of `KyselyEtStore` (table `et_presets`, migration 0006). */
export class KyselyEtPresets {
  readonly #db: Kysely<{ et_presets: EtPresetsTable }>

  constructor(db: Kysely<{ et_presets: EtPresetsTable }>) {
    this.#db = db
  }

  async create(p: EtPresetRecord, maxPerOwner: number): Promise<'created' | 'limit'> {
    const row = {
      id: p.id,
      owner: p.owner,
      name: p.name,
      settings: JSON.stringify(p.settings),
      preset: JSON.stringify(p.preset),
      created_at: p.createdAt,
    }
    // Counted and added under a lock of the owner, held to the commit: two CreatePreset at
    // once cannot both see room for one more.
    return this.#db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext(${`transcodekit.et_presets:${p.owner}`}))`.execute(
        trx,
      )
      const { count } = await trx
        .selectFrom('et_presets')
        .select((eb) => eb.fn.countAll<string>().as('count'))
        .where('owner', '=', p.owner)
        .executeTakeFirstOrThrow()
      if (Number(count) >= maxPerOwner) return 'limit'
      await trx.insertInto('et_presets').values(row).execute()
      return 'created'
    })
  }

  async get(id: string, owner: Owner): Promise<EtPresetRecord | null> {
    const row = await this.#db
      .selectFrom('et_presets')
      .selectAll()
      .where('id', '=', id)
      .where('owner', '=', owner)
      .executeTakeFirst()
    return row ? toPreset(row) : null
  }

  async list(owner: Owner): Promise<EtPresetRecord[]> {
    const rows = await this.#db
      .selectFrom('et_presets')
      .selectAll()
      .where('owner', '=', owner)
      .orderBy('id')
      .execute()
    return rows.map(toPreset)
  }

  async delete(id: string, owner: Owner): Promise<boolean> {
    const result = await this.#db
      .deleteFrom('et_presets')
      .where('id', '=', id)
      .where('owner', '=', owner)
      .executeTakeFirst()
    return result.numDeletedRows > 0n
  }
}
