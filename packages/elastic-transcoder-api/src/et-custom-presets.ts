import type { Owner, Preset } from '@transcodekit/core'
import { checkPresetRequest } from './custom-preset.ts'
import { ElasticTranscoderError, notFound } from './et-errors.ts'
import { newEtId } from './et-ids.ts'
import type { ResolvedEtOptions } from './plugin-options.ts'
import type { EtPresetRecord } from './store/et-store.ts'

/** The `Preset` object of Elastic Transcoder's API for a custom preset. */
export function customPresetView(
  record: EtPresetRecord,
  arnPrefix: string,
): Record<string, unknown> {
  return {
    Id: record.id,
    Arn: `${arnPrefix}:preset/${record.id}`,
    Name: record.name,
    ...record.settings,
    Type: 'Custom',
  }
}

/**
 * The custom presets of the API: each owner's own, kept in the store, capped per owner
 * (`maxPresetsPerOwner`). A job asks for one by its id and runs from a copy of its core
 * preset, which no other owner's catalog or job sees.
 */
export class EtCustomPresets {
  readonly #options: ResolvedEtOptions

  constructor(options: ResolvedEtOptions) {
    this.#options = options
  }

  async create(owner: Owner, body: unknown): Promise<EtPresetRecord> {
    const id = newEtId()
    const checked = checkPresetRequest(body, id)
    const record: EtPresetRecord = { id, owner, ...checked, createdAt: new Date() }
    const created = await this.#options.store.createPreset(record, {
      maxPerOwner: this.#options.maxPresetsPerOwner,
    })
    if (created === 'limit') {
      throw new ElasticTranscoderError(
        'LimitExceededException',
        `Too many custom presets (at most ${this.#options.maxPresetsPerOwner}): delete one first.`,
      )
    }
    return record
  }

  async read(owner: Owner, id: string): Promise<EtPresetRecord> {
    const record = await this.#options.store.getPreset(id, owner)
    if (!record) throw notFound('preset', id)
    return record
  }

  list(owner: Owner): Promise<EtPresetRecord[]> {
    return this.#options.store.listPresets(owner)
  }

  /**
   * The owner's core presets for these ids, those of them that are theirs: what CreateJob
   * passes to the service with the job.
   */
  async forJob(owner: Owner, ids: readonly string[]): Promise<Map<string, Preset>> {
    const found = new Map<string, Preset>()
    for (const id of new Set(ids)) {
      const record = await this.#options.store.getPreset(id, owner)
      if (record) found.set(id, record.preset)
    }
    return found
  }

  /**
   * Deletes one of the owner's custom presets. As on ET, a preset that an unfinished job of
   * theirs uses is in use (ResourceInUseException); a job made meanwhile is not harmed, since
   * each job runs from its own copy of the preset.
   */
  async delete(owner: Owner, id: string): Promise<void> {
    await this.read(owner, id)
    for (const status of ['Submitted', 'Progressing'] as const) {
      let after: string | null = null
      do {
        const page = await this.#options.store.listJobs({
          owner,
          status,
          ascending: true,
          after,
          limit: 100,
        })
        if (page.items.some((job) => job.outputs.some((o) => o.presetId === id))) {
          throw new ElasticTranscoderError(
            'ResourceInUseException',
            `The preset ${id} is used by a job that has not finished.`,
          )
        }
        after = page.next
      } while (after !== null)
    }
    if (!(await this.#options.store.deletePreset(id, owner))) throw notFound('preset', id)
  }
}
