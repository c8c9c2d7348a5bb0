export {
  API_VERSION_PATH,
  default,
  default as elasticTranscoderApi,
} from './elastic-transcoder-plugin.ts'
export * from './et-errors.ts'
export { newEtId } from './et-ids.ts'
export { type EtSystemPreset, presetView, systemPresets } from './et-presets.ts'
export { jobView, notificationMessage, pipelineView } from './et-views.ts'
export * from './plugin-options.ts'
export * from './sigv4-verifier.ts'
export * from './store/et-store.ts'
export * from './store/memory-et-store.ts'
