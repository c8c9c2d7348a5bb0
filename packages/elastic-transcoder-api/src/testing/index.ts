export * from './et-store-suite.ts'
