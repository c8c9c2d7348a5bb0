import { customPresetView } from '../et-custom-presets.ts'
import { ElasticTranscoderError, notFound } from '../et-errors.ts'
import { presetView, systemPresets } from '../et-presets.ts'
import { decodePageToken, encodePageToken, parseAscending } from '../page-token.ts'
import type { EtRequest, RouteContext } from './route-context.ts'

/**
 * ListPresets and ReadPreset: every Elastic Transcoder system preset the service's catalog
 * runs, and the caller's own custom presets (another owner's are absent: 404). CreatePreset
 * makes a custom preset of the caller where the core preset schema can express it
 * (ValidationException naming the field where not); DeletePreset deletes one of theirs.
 */
export function registerPresetRoutes({ app, settings, presets: custom }: RouteContext): void {
  const system = systemPresets(settings.service.presets)
  const byId = new Map(system.map((p) => [p.id, p]))
  const PAGE = settings.pageSize

  app.get('/presets', async (request: EtRequest) => {
    const ascending = parseAscending(request.query.Ascending, true)
    const after = decodePageToken(request.query.PageToken)
    const all = [
      ...system.map((p) => ({ id: p.id, view: () => presetView(p, settings.arnPrefix) })),
      ...(await custom.list(request.etOwner)).map((p) => ({
        id: p.id,
        view: () => customPresetView(p, settings.arnPrefix),
      })),
    ].sort((a, b) => (ascending ? a.id.localeCompare(b.id) : b.id.localeCompare(a.id)))
    const start = after === null ? 0 : all.findIndex((p) => p.id === after) + 1
    if (after !== null && start === 0) throw notFound('preset', after)
    const items = all.slice(start, start + PAGE)
    const next = start + PAGE < all.length ? encodePageToken(items.at(-1)?.id ?? null) : undefined
    return {
      Presets: items.map((p) => p.view()),
      ...(next ? { NextPageToken: next } : {}),
    }
  })

  app.get('/presets/:Id', async (request: EtRequest) => {
    const id = request.params.Id ?? ''
    const preset = byId.get(id)
    if (preset) return { Preset: presetView(preset, settings.arnPrefix) }
    return { Preset: customPresetView(await custom.read(request.etOwner, id), settings.arnPrefix) }
  })

  app.post('/presets', async (request, reply) => {
    const record = await custom.create(request.etOwner, request.etBody)
    return reply.status(201).send({ Preset: customPresetView(record, settings.arnPrefix) })
  })

  app.delete('/presets/:Id', async (request: EtRequest, reply) => {
    const id = request.params.Id ?? ''
    if (byId.has(id)) {
      throw new ElasticTranscoderError(
        'AccessDeniedException',
        `The system preset ${id} cannot be deleted.`,
      )
    }
    await custom.delete(request.etOwner, id)
    return reply.status(202).send({})
  })
}
