/**
 * Whether a database error is a unique (or primary key) violation, on each dialect Strapi
 * runs on: PostgreSQL's SQLSTATE 23505, better-sqlite3's SQLITE_CONSTRAINT_UNIQUE and
 * SQLITE_CONSTRAINT_PRIMARYKEY, MySQL/MariaDB's ER_DUP_ENTRY (1062).
 */
export function isUniqueViolation(error: unknown): boolean {
  const { code, errno } = (error ?? {}) as { code?: unknown; errno?: unknown }
  return (
    code === '23505' ||
    code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    code === 'ER_DUP_ENTRY' ||
    errno === 1062
  )
}
