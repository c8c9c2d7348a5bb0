import type { Knex } from 'knex'

/**
 * The parts of a Strapi 5 instance the plugin uses, typed here so that this package needs
 * no `@strapi/strapi` to compile or test (a subset of `Core.Strapi`).
 */
export interface StrapiHost {
  log: StrapiLogger
  config: { get(path: string, defaultValue?: unknown): unknown }
  dirs: { static: { public: string } }
  db: {
    lifecycles: { subscribe(subscriber: StrapiLifecycleSubscriber): (() => unknown) | unknown }
    query(uid: string): StrapiQuery
    /** Strapi's Knex instance (SQLite, PostgreSQL or MySQL), owned by Strapi. */
    connection: Knex
  }
  plugin(name: string): { provider?: StrapiUploadProvider } | undefined
  /** Strapi's services by uid (`admin::permission` takes the plugin's RBAC actions). */
  service?(uid: string): unknown
}

export interface StrapiLogger {
  debug(message: string): void
  info(message: string): void
  warn(message: string): void
  error(message: string): void
}

export interface StrapiQuery {
  findOne(params: {
    where: Record<string, unknown>
    select?: string[]
  }): Promise<Record<string, unknown> | null>
  update(params: {
    where: Record<string, unknown>
    data: Record<string, unknown>
  }): Promise<unknown>
}

/** What `strapi.db.lifecycles.subscribe` accepts (the object form). */
export interface StrapiLifecycleSubscriber {
  models?: string[]
  afterCreate?(event: StrapiLifecycleEvent): void | Promise<void>
  afterDelete?(event: StrapiLifecycleEvent): void | Promise<void>
  beforeUpdate?(event: StrapiLifecycleEvent): void | Promise<void>
  afterUpdate?(event: StrapiLifecycleEvent): void | Promise<void>
}

export interface StrapiLifecycleEvent {
  action: string
  model: { uid: string }
  result?: unknown
  params?: unknown
  /** Shared by the before- and after- hooks of one subscriber for one operation. */
  state?: Record<string, unknown>
}

/** The upload provider in use (`strapi.plugin('upload').provider`). */
export interface StrapiUploadProvider {
  isPrivate?(): boolean | Promise<boolean>
  getSignedUrl?(file: Record<string, unknown>): Promise<{ url: string }>
}
