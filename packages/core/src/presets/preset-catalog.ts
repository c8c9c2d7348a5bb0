import { Value } from '@sinclair/typebox/value'
import { InvalidPresetError, UnknownPresetError } from '../errors.ts'
import { builtinPresets } from './builtin-presets.ts'
import { type Preset, PresetSchema } from './preset-schema.ts'

export interface PresetCatalogOptions {
  /** Extra presets, as data; each is checked against `PresetSchema`. @default [] */
  presets?: readonly unknown[]
  /** Start from the built-in catalog. @default true */
  builtins?: boolean
}

/** Looks presets up by canonical id or alias. Immutable once made. */
export class PresetCatalog {
  readonly #byName = new Map<string, Preset>()
  readonly #presets: Preset[] = []

  constructor(presets: readonly Preset[]) {
    for (const preset of presets) {
      for (const name of [preset.id, ...(preset.aliases ?? [])]) {
        if (this.#byName.has(name)) {
          throw new InvalidPresetError(`preset name ${JSON.stringify(name)} is used twice`)
        }
        this.#byName.set(name, preset)
      }
      this.#presets.push(preset)
    }
  }

  /** The preset called `name` (id or alias). Throws `UnknownPresetError`. */
  resolve(name: string): Preset {
    const preset = this.#byName.get(name)
    if (!preset) throw new UnknownPresetError(name)
    return preset
  }

  /** Resolves several names, dropping repeats of one preset, in the order given. */
  resolveAll(names: readonly string[]): Preset[] {
    const seen = new Set<string>()
    const result: Preset[] = []
    for (const name of names) {
      const preset = this.resolve(name)
      if (!seen.has(preset.id)) {
        seen.add(preset.id)
        result.push(preset)
      }
    }
    return result
  }

  has(name: string): boolean {
    return this.#byName.has(name)
  }

  list(): readonly Preset[] {
    return this.#presets
  }
}

/** Checks one custom preset; throws `InvalidPresetError` naming the first problem. */
export function validatePreset(input: unknown): Preset {
  if (!Value.Check(PresetSchema, input)) {
    const first = Value.Errors(PresetSchema, input).First()
    const where = first?.path || '(root)'
    throw new InvalidPresetError(`invalid preset at ${where}: ${first?.message ?? 'invalid'}`)
  }
  const preset = input as Preset
  const kinds = [preset.audio || preset.video ? 'av' : null, preset.image ? 'image' : null]
  if (kinds.every((kind) => kind === null)) {
    throw new InvalidPresetError(`preset ${preset.id} has no audio, video or image settings`)
  }
  if ((preset.container === 'image') !== Boolean(preset.image)) {
    throw new InvalidPresetError(`preset ${preset.id}: image settings go with container "image"`)
  }
  if ((preset.container === 'hls') !== Boolean(preset.hls)) {
    throw new InvalidPresetError(`preset ${preset.id}: hls settings go with container "hls"`)
  }
  return structuredClone(preset)
}

/** The built-in catalog plus validated custom presets. */
export function createPresetCatalog(options: PresetCatalogOptions = {}): PresetCatalog {
  const custom = (options.presets ?? []).map(validatePreset)
  return new PresetCatalog([...(options.builtins === false ? [] : builtinPresets), ...custom])
}
