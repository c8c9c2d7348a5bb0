import { presetNeeds } from '@transcodekit/core'
import type { ResolvedOptions } from '../plugin-options.ts'
import { errorResponses, PresetListSchema, ref } from '../schemas.ts'
import type { TypedInstance } from '../typed-instance.ts'

export function registerPresetRoute(app: TypedInstance, { service }: ResolvedOptions): void {
  app.get(
    '/presets',
    {
      schema: {
        operationId: 'listPresets',
        tags: ['transcodekit'],
        summary: 'List the preset catalog',
        description: 'Any id or alias can be given as a preset of an upload.',
        response: { 200: ref(PresetListSchema), ...errorResponses(401) },
      },
    },
    async () => ({
      items: service.presets.list().map((preset) => ({
        id: preset.id,
        aliases: [...(preset.aliases ?? [])],
        description: preset.description,
        container: preset.container,
        extension: preset.extension,
        contentType: preset.contentType,
        needs: presetNeeds(preset),
        elasticTranscoderPresetId: preset.elasticTranscoderPresetId ?? null,
      })),
    }),
  )
}
