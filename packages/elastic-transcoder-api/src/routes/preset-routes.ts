import { ElasticTranscoderError, notFound } from '../et-errors.ts'
import { presetView, systemPresets } from '../et-presets.ts'
import { decodePageToken, encodePageToken, parseAscending } from '../page-token.ts'
import type { EtRequest, RouteContext } from './route-context.ts'

/**
 * ListPresets, ReadPreset: every Elastic Transcoder system preset the service's catalog runs.
 * CreatePreset and DeletePreset answer ET's errors: custom presets are configured in the
 * service's catalog (`createPresetCatalog({ presets })`), not through this API.
 */
export function registerPresetRoutes({ app, settings }: RouteContext): void {
  const presets = systemPresets(settings.service.presets)
  const byId = new Map(presets.map((p) => [p.id, p]))
  const PAGE = settings.pageSize

  app.get('/presets', async (request: EtRequest) => {
    const ascending = parseAscending(request.query.Ascending, true)
    const after = decodePageToken(request.query.PageToken)
    const ordered = ascending ? presets : [...presets].reverse()
    const start = after === null ? 0 : ordered.findIndex((p) => p.id === after) + 1
    if (after !== null && start === 0) throw notFound('preset', after)
    const items = ordered.slice(start, start + PAGE)
    const next =
      start + PAGE < ordered.length ? encodePageToken(items.at(-1)?.id ?? null) : undefined
    return {
      Presets: items.map((p) => presetView(p, settings.arnPrefix)),
      ...(next ? { NextPageToken: next } : {}),
    }
  })

  app.get('/presets/:Id', async (request: EtRequest) => {
    const preset = byId.get(request.params.Id ?? '')
    if (!preset) throw notFound('preset', request.params.Id ?? '')
    return { Preset: presetView(preset, settings.arnPrefix) }
  })

  app.post('/presets', async () => {
    throw new ElasticTranscoderError(
      'AccessDeniedException',
      'Custom presets cannot be created through this endpoint: add them to the transcodekit preset catalog of the server, or use a system preset.',
    )
  })

  app.delete('/presets/:Id', async (request: EtRequest) => {
    const id = request.params.Id ?? ''
    if (!byId.has(id)) throw notFound('preset', id)
    throw new ElasticTranscoderError(
      'AccessDeniedException',
      `The system preset ${id} cannot be deleted.`,
    )
  })
}
