import {
  ET_TERMINAL,
  type EtJobRecord,
  type EtListRequest,
  type EtPage,
  type EtPipelineRecord,
  type EtPresetRecord,
  type EtStore,
} from './et-store.ts'

function page<T extends { id: string }>(all: T[], request: EtListRequest): EtPage<T> {
  const sorted = [...all].sort((a, b) =>
    request.ascending ? a.id.localeCompare(b.id) : b.id.localeCompare(a.id),
  )
  const after = request.after
  const rest =
    after === null
      ? sorted
      : sorted.filter((item) =>
          request.ascending ? item.id.localeCompare(after) > 0 : item.id.localeCompare(after) < 0,
        )
  const items = rest.slice(0, request.limit).map((item) => structuredClone(item))
  return { items, next: rest.length > request.limit ? (items.at(-1)?.id ?? null) : null }
}

/** An `EtStore` in memory: for tests and single-process servers without a database. */
export class MemoryEtStore implements EtStore {
  readonly #pipelines = new Map<string, EtPipelineRecord>()
  readonly #jobs = new Map<string, EtJobRecord>()
  readonly #presets = new Map<string, EtPresetRecord>()
  /** When each job's delivery was last claimed (ms since the epoch). */
  readonly #claimed = new Map<string, number>()

  async createPipeline(
    pipeline: EtPipelineRecord,
    { maxPerOwner = Number.POSITIVE_INFINITY }: { maxPerOwner?: number } = {},
  ): Promise<'created' | 'limit'> {
    if (this.#pipelines.has(pipeline.id)) throw new Error(`pipeline ${pipeline.id} exists`)
    let count = 0
    for (const p of this.#pipelines.values()) if (p.owner === pipeline.owner) count++
    if (count >= maxPerOwner) return 'limit'
    this.#pipelines.set(pipeline.id, structuredClone(pipeline))
    return 'created'
  }

  async getPipeline(id: string, owner: string): Promise<EtPipelineRecord | null> {
    const pipeline = this.#pipelines.get(id)
    return pipeline && pipeline.owner === owner ? structuredClone(pipeline) : null
  }

  async listPipelines(request: EtListRequest): Promise<EtPage<EtPipelineRecord>> {
    return page(
      [...this.#pipelines.values()].filter((p) => p.owner === request.owner),
      request,
    )
  }

  async updatePipeline(
    id: string,
    owner: string,
    patch: Partial<Omit<EtPipelineRecord, 'id' | 'owner' | 'createdAt'>>,
  ): Promise<EtPipelineRecord | null> {
    const pipeline = this.#pipelines.get(id)
    if (!pipeline || pipeline.owner !== owner) return null
    const updated = { ...pipeline, ...structuredClone(patch) }
    this.#pipelines.set(id, updated)
    return structuredClone(updated)
  }

  async deletePipeline(id: string, owner: string): Promise<'deleted' | 'missing' | 'in-use'> {
    const pipeline = this.#pipelines.get(id)
    if (!pipeline || pipeline.owner !== owner) return 'missing'
    for (const job of this.#jobs.values()) {
      if (job.pipelineId === id && !ET_TERMINAL.includes(job.status)) return 'in-use'
    }
    this.#pipelines.delete(id)
    return 'deleted'
  }

  async createPreset(
    preset: EtPresetRecord,
    { maxPerOwner = Number.POSITIVE_INFINITY }: { maxPerOwner?: number } = {},
  ): Promise<'created' | 'limit'> {
    if (this.#presets.has(preset.id)) throw new Error(`preset ${preset.id} exists`)
    // Counted and added with no await between: concurrent creates cannot pass the cap.
    let count = 0
    for (const p of this.#presets.values()) if (p.owner === preset.owner) count++
    if (count >= maxPerOwner) return 'limit'
    this.#presets.set(preset.id, structuredClone(preset))
    return 'created'
  }

  async getPreset(id: string, owner: string): Promise<EtPresetRecord | null> {
    const preset = this.#presets.get(id)
    return preset && preset.owner === owner ? structuredClone(preset) : null
  }

  async listPresets(owner: string): Promise<EtPresetRecord[]> {
    return [...this.#presets.values()]
      .filter((p) => p.owner === owner)
      .sort((a, b) => a.id.localeCompare(b.id))
      .map((p) => structuredClone(p))
  }

  async deletePreset(id: string, owner: string): Promise<boolean> {
    if (this.#presets.get(id)?.owner !== owner) return false
    return this.#presets.delete(id)
  }

  async createJob(job: EtJobRecord): Promise<void> {
    if (this.#jobs.has(job.id)) throw new Error(`job ${job.id} exists`)
    this.#jobs.set(job.id, structuredClone(job))
  }

  async getJob(id: string, owner: string): Promise<EtJobRecord | null> {
    const job = this.#jobs.get(id)
    return job && job.owner === owner ? structuredClone(job) : null
  }

  async getJobById(id: string): Promise<EtJobRecord | null> {
    const job = this.#jobs.get(id)
    return job ? structuredClone(job) : null
  }

  async listJobs(
    request: EtListRequest & { pipelineId?: string; status?: EtJobRecord['status'] },
  ): Promise<EtPage<EtJobRecord>> {
    return page(
      [...this.#jobs.values()].filter(
        (job) =>
          job.owner === request.owner &&
          (request.pipelineId === undefined || job.pipelineId === request.pipelineId) &&
          (request.status === undefined || job.status === request.status),
      ),
      request,
    )
  }

  async updateJob(
    id: string,
    patch: Partial<EtJobRecord>,
    options: { onlyIf?: readonly EtJobRecord['status'][] } = {},
  ): Promise<EtJobRecord | null> {
    const job = this.#jobs.get(id)
    if (!job || ET_TERMINAL.includes(job.status)) return null
    if (options.onlyIf && !options.onlyIf.includes(job.status)) return null
    const updated = { ...job, ...structuredClone(patch) }
    this.#jobs.set(id, updated)
    return structuredClone(updated)
  }

  async listUnfinishedJobs(limit: number, after?: string): Promise<EtJobRecord[]> {
    return [...this.#jobs.values()]
      .filter((job) => !ET_TERMINAL.includes(job.status))
      .filter((job) => after === undefined || job.id.localeCompare(after) > 0)
      .sort((a, b) => a.id.localeCompare(b.id))
      .slice(0, limit)
      .map((job) => structuredClone(job))
  }

  async claimDelivery(id: string, leaseMs: number): Promise<boolean> {
    const claimedAt = this.#claimed.get(id)
    const now = Date.now()
    if (!this.#jobs.has(id) || (claimedAt !== undefined && claimedAt > now - leaseMs)) {
      return false
    }
    this.#claimed.set(id, now)
    return true
  }
}

export function memoryEtStore(): EtStore {
  return new MemoryEtStore()
}
