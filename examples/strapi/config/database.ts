import path from 'node:path'
import type { Core } from '@strapi/strapi'

// SQLite by default, as a new Strapi app; PostgreSQL when DATABASE_CLIENT says so or a
// DATABASE_URL is set; MySQL/MariaDB with DATABASE_CLIENT=mysql and a mysql:// DATABASE_URL. The transcodekit plugin keeps its jobs in this database either way.
export default ({ env }: Core.Config.Shared.ConfigParams) => {
  const client = env('DATABASE_CLIENT', env('DATABASE_URL') ? 'postgres' : 'sqlite')
  if (client === 'sqlite') {
    return {
      connection: {
        client: 'sqlite',
        connection: {
          filename: path.resolve(env('DATABASE_FILENAME', path.join('.tmp', 'data.db'))),
        },
        useNullAsDefault: true,
      },
    }
  }
  if (client === 'mysql') {
    const url = new URL(env('DATABASE_URL', 'mysql://root@127.0.0.1:3306/strapi'))
    return {
      connection: {
        client: 'mysql',
        connection: {
          host: url.hostname,
          port: Number(url.port || 3306),
          database: decodeURIComponent(url.pathname.slice(1)),
          user: decodeURIComponent(url.username),
          password: decodeURIComponent(url.password),
        },
        pool: { min: env.int('DATABASE_POOL_MIN', 0), max: env.int('DATABASE_POOL_MAX', 10) },
      },
    }
  }
  return {
    connection: {
      client: 'postgres',
      connection: {
        connectionString: env('DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/strapi'),
        ssl: env.bool('DATABASE_SSL', false)
          ? { rejectUnauthorized: env.bool('DATABASE_SSL_REJECT_UNAUTHORIZED', true) }
          : false,
        schema: env('DATABASE_SCHEMA', 'public'),
      },
      pool: { min: env.int('DATABASE_POOL_MIN', 0), max: env.int('DATABASE_POOL_MAX', 10) },
      acquireConnectionTimeout: env.int('DATABASE_CONNECTION_TIMEOUT', 60_000),
    },
  }
}
