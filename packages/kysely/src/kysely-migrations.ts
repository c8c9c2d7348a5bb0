import { ConfigurationError, errorText } from '@transcodekit/core'
import type { Kysely } from 'kysely'
import {
  type Migration,
  type MigrationProvider,
  type MigrationResult,
  Migrator,
} from 'kysely/migration'
import { initial } from './migrations/0001-initial.ts'
import { owners } from './migrations/0002-owners.ts'
import { outputErrors } from './migrations/0003-output-errors.ts'
import { webhookDeliveries } from './migrations/0004-webhook-deliveries.ts'
import { elasticTranscoder } from './migrations/0005-elastic-transcoder.ts'
import { etPresets } from './migrations/0006-et-presets.ts'
import { deferredProbe } from './migrations/0007-deferred-probe.ts'

/** The PostgreSQL schema our tables live in unless told otherwise. */
export const DEFAULT_SCHEMA = 'transcodekit'

export interface SchemaOptions {
  /** The PostgreSQL schema of the tables, beside the app's own. @default 'transcodekit' */
  schema?: string
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/

/** Checks a schema name and returns it (or the default). */
export function resolveSchema(schema: string | undefined): string {
  const name = schema ?? DEFAULT_SCHEMA
  if (!IDENTIFIER.test(name)) {
    throw new ConfigurationError(
      `option "schema" must be a lower-case PostgreSQL identifier (letters, digits, _), got ${JSON.stringify(name)}`,
    )
  }
  return name
}

/**
 * Our migrations by name, for an app that runs them in its own `Migrator` beside its own
 * migrations. The names start with `transcodekit-` and sort in the order they must run.
 *
 * @example
 * const migrator = new Migrator({
 *   db,
 *   provider: { getMigrations: async () => ({ ...appMigrations, ...transcodekitMigrations() }) },
 *   allowUnorderedMigrations: true,
 * })
 */
export function transcodekitMigrations(options: SchemaOptions = {}): Record<string, Migration> {
  const schema = resolveSchema(options.schema)
  return {
    'transcodekit-0001-initial': initial(schema),
    'transcodekit-0002-owners': owners(schema),
    'transcodekit-0003-output-errors': outputErrors(schema),
    'transcodekit-0004-webhook-deliveries': webhookDeliveries(schema),
    'transcodekit-0005-elastic-transcoder': elasticTranscoder(schema),
    'transcodekit-0006-et-presets': etPresets(schema),
    'transcodekit-0007-deferred-probe': deferredProbe(schema),
  }
}

/** A `MigrationProvider` with only our migrations. */
export class TranscodekitMigrationProvider implements MigrationProvider {
  readonly #schema: string

  constructor(options: SchemaOptions = {}) {
    this.#schema = resolveSchema(options.schema)
  }

  async getMigrations(): Promise<Record<string, Migration>> {
    return transcodekitMigrations({ schema: this.#schema })
  }
}

/**
 * Brings our tables up to date, with their own migration bookkeeping
 * (`<schema>.transcodekit_migration`), so it never mixes with the app's. Safe to run from
 * several processes at once (the migrator takes a lock). Throws if a migration fails.
 *
 * @example
 * const { db, close } = await openDatabase({ dataDir: './data/db' })
 * await migrateToLatest(db)
 */
export async function migrateToLatest(
  db: Kysely<any>,
  options: SchemaOptions = {},
): Promise<MigrationResult[]> {
  const schema = resolveSchema(options.schema)
  const migrator = new Migrator({
    db,
    provider: new TranscodekitMigrationProvider({ schema }),
    migrationTableSchema: schema,
    migrationTableName: 'transcodekit_migration',
    migrationLockTableName: 'transcodekit_migration_lock',
  })
  const { error, results = [] } = await migrator.migrateToLatest()
  if (error) {
    const failed = results.find((result) => result.status === 'Error')
    throw new Error(
      `transcodekit migration ${failed?.migrationName ?? ''} failed: ${errorText(error)}`,
      { cause: error },
    )
  }
  return results
}
