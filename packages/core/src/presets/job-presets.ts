import { InvalidPresetError } from '../errors.ts'
import { type PresetCatalog, validatePreset } from './preset-catalog.ts'
import type { Preset } from './preset-schema.ts'

/**
 * The presets one job may ask for: the catalog's, and the job's own custom presets (checked
 * like the catalog's), which no other job sees. A custom preset's id may not be a name of the
 * catalog.
 */
export class JobPresets {
  readonly #catalog: PresetCatalog
  readonly #custom = new Map<string, Preset>()

  constructor(catalog: PresetCatalog, custom: readonly Preset[] = []) {
    this.#catalog = catalog
    for (const input of custom) {
      const preset = validatePreset(input)
      if (catalog.has(preset.id) || this.#custom.has(preset.id)) {
        throw new InvalidPresetError(`custom preset id ${JSON.stringify(preset.id)} is taken`)
      }
      this.#custom.set(preset.id, preset)
    }
  }

  /** The custom preset or catalog preset called `name`. Throws `UnknownPresetError`. */
  resolve(name: string): Preset {
    return this.#custom.get(name) ?? this.#catalog.resolve(name)
  }

  /** Resolves several names, dropping repeats of one preset, in the order given. */
  resolveAll(names: readonly string[]): Preset[] {
    const byId = new Map<string, Preset>()
    for (const name of names) {
      const preset = this.resolve(name)
      if (!byId.has(preset.id)) byId.set(preset.id, preset)
    }
    return [...byId.values()]
  }

  /** The ids of the job's own presets. */
  customIds(): ReadonlySet<string> {
    return new Set(this.#custom.keys())
  }
}
