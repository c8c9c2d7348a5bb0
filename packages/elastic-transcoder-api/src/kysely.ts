export * from './store/kysely-et-store.ts'
