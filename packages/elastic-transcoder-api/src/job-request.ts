import { assertValidBucketKey, type Preset, type PresetCatalog } from '@transcodekit/core'
import { validationError } from './et-errors.ts'
import { ET_ID } from './et-ids.ts'
import { ET_PRESET_ID } from './et-presets.ts'

/** A CreateJob request, checked: what the API runs. */
export interface CheckedJobRequest {
  pipelineId: string
  input: { Key: string } & Record<string, unknown>
  outputKeyPrefix: string
  outputs: Array<{
    key: string
    presetId: string
    corePresetId: string
    segmentDuration: string | null
  }>
  userMetadata: Record<string, string> | null
  /** The caller's custom presets the outputs use, passed to the service with the job. */
  customPresets: Preset[]
}

// biome-ignore lint/suspicious/noExplicitAny: untrusted wire JSON, every field is checked here
type Wire = Record<string, any>

const AUTO_INPUT_FIELDS = ['FrameRate', 'Resolution', 'AspectRatio', 'Interlaced', 'Container']
const MAX_KEY = 255

function isObject(value: unknown): value is Wire {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function checkKey(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_KEY) {
    throw validationError(`${what} must be a string of 1 to ${MAX_KEY} characters.`)
  }
  return value
}

/**
 * A key of the caller's bucket: any UTF-8 text S3 takes (spaces, accents), but never one that
 * could name a file outside a folder bucket (`assertValidBucketKey`). The key only ever reaches
 * the bucket's storage: the engine works on copies under the server's own keys.
 */
function checkStorageKey(key: string, what: string): void {
  try {
    assertValidBucketKey(key)
  } catch {
    throw validationError(`${what} is not a valid object key: ${JSON.stringify(key)}.`)
  }
}

function refuseUnknown(object: Wire, allowed: readonly string[], what: string) {
  for (const [name, value] of Object.entries(object)) {
    if (value === undefined || value === null) continue
    if (!allowed.includes(name)) {
      throw validationError(`${what}:${name} is not supported by this Elastic Transcoder endpoint.`)
    }
  }
}

/** The ET-shaped preset ids a CreateJob body asks for (at most 30), before it is checked. */
export function requestedPresetIds(body: unknown): string[] {
  if (!isObject(body)) return []
  const outputs: unknown = body.Outputs ?? (body.Output ? [body.Output] : [])
  if (!Array.isArray(outputs)) return []
  return outputs
    .slice(0, 30)
    .map((o) => (isObject(o) ? o.PresetId : undefined))
    .filter((id): id is string => typeof id === 'string' && ET_PRESET_ID.test(id))
}

/**
 * Checks a CreateJob body as Elastic Transcoder does, and refuses with a ValidationException
 * what this endpoint cannot do rather than ignore it: inputs other than `auto`, several inputs
 * (clip stitching), playlists, captions, watermarks, album art, encryption, thumbnails, and
 * presets that are neither system presets of the catalog nor the caller's custom presets
 * (`custom`, by ET id), or that make HLS or images.
 */
export function checkJobRequest(
  body: unknown,
  catalog: PresetCatalog,
  custom: ReadonlyMap<string, Preset> = new Map(),
): CheckedJobRequest {
  if (!isObject(body)) throw validationError('The request body must be a JSON object.')
  refuseUnknown(
    body,
    [
      'PipelineId',
      'Input',
      'Inputs',
      'Output',
      'Outputs',
      'OutputKeyPrefix',
      'Playlists',
      'UserMetadata',
    ],
    'CreateJob',
  )
  if (typeof body.PipelineId !== 'string' || !ET_ID.test(body.PipelineId)) {
    throw validationError(
      "1 validation error detected: Value at 'pipelineId' failed to satisfy constraint: Member must satisfy regular expression pattern: ^\\d{13}-\\w{6}$",
    )
  }
  const inputs: unknown[] = body.Inputs ?? (body.Input ? [body.Input] : [])
  if (!Array.isArray(inputs) || inputs.length !== 1 || (body.Input && body.Inputs)) {
    throw validationError(
      'A job has exactly one Input (clip stitching with Inputs is not supported).',
    )
  }
  const input = inputs[0]
  if (!isObject(input)) throw validationError('Input must be an object.')
  refuseUnknown(input, ['Key', ...AUTO_INPUT_FIELDS], 'Input')
  checkStorageKey(checkKey(input.Key, 'Input:Key'), 'Input:Key')
  for (const field of AUTO_INPUT_FIELDS) {
    if (input[field] !== undefined && input[field] !== 'auto') {
      throw validationError(`Input:${field} must be auto on this endpoint (the input is probed).`)
    }
  }
  if (Array.isArray(body.Playlists) ? body.Playlists.length > 0 : body.Playlists != null) {
    throw validationError('Playlists are not supported by this Elastic Transcoder endpoint.')
  }
  const outputs: unknown[] = body.Outputs ?? (body.Output ? [body.Output] : [])
  if (
    !Array.isArray(outputs) ||
    outputs.length === 0 ||
    outputs.length > 30 ||
    (body.Output && body.Outputs)
  ) {
    throw validationError('A job has 1 to 30 outputs.')
  }
  const prefix = body.OutputKeyPrefix ?? ''
  if (typeof prefix !== 'string' || prefix.length > MAX_KEY) {
    throw validationError(`OutputKeyPrefix must be a string of at most ${MAX_KEY} characters.`)
  }
  const keys = new Set<string>()
  const checked = outputs.map((raw, index) => {
    const what = `Outputs[${index}]`
    if (!isObject(raw)) throw validationError(`${what} must be an object.`)
    refuseUnknown(raw, ['Key', 'PresetId', 'SegmentDuration', 'Rotate', 'ThumbnailPattern'], what)
    const key = checkKey(raw.Key, `${what}:Key`)
    if ((prefix + key).length > MAX_KEY) {
      throw validationError(
        `${what}: OutputKeyPrefix and Key together exceed ${MAX_KEY} characters.`,
      )
    }
    checkStorageKey(prefix + key, `${what}: OutputKeyPrefix + Key`)
    if (keys.has(key)) throw validationError(`Two outputs have the same key: ${key}`)
    keys.add(key)
    if (raw.Rotate !== undefined && raw.Rotate !== 'auto' && raw.Rotate !== '0') {
      throw validationError(`${what}:Rotate must be auto or 0 on this endpoint.`)
    }
    if (raw.ThumbnailPattern !== undefined && raw.ThumbnailPattern !== '') {
      throw validationError(
        `${what}:ThumbnailPattern: thumbnails are not supported by this endpoint.`,
      )
    }
    const presetId = raw.PresetId
    const preset =
      typeof presetId !== 'string' || !ET_PRESET_ID.test(presetId)
        ? null
        : catalog.has(presetId)
          ? catalog.resolve(presetId)
          : (custom.get(presetId) ?? null)
    if (!preset) {
      throw validationError(`The specified preset was not found: presetId=${String(presetId)}.`)
    }
    if (preset.container === 'hls' || preset.container === 'image') {
      throw validationError(
        `The preset ${presetId} (${preset.container}) is not supported by this endpoint yet.`,
      )
    }
    if (raw.SegmentDuration !== undefined) {
      throw validationError(`${what}:SegmentDuration applies to HLS presets only.`)
    }
    return { key, presetId, corePresetId: preset.id, segmentDuration: null }
  })
  let userMetadata: Record<string, string> | null = null
  if (body.UserMetadata !== undefined && body.UserMetadata !== null) {
    const entries = isObject(body.UserMetadata) ? Object.entries(body.UserMetadata) : null
    if (
      !entries ||
      entries.length > 10 ||
      entries.some(([k, v]) => typeof v !== 'string' || k.length > 256 || v.length > 256)
    ) {
      throw validationError(
        'UserMetadata holds at most 10 string pairs of at most 256 characters each.',
      )
    }
    userMetadata = Object.fromEntries(entries) as Record<string, string>
  }
  return {
    pipelineId: body.PipelineId,
    input: { ...input, Key: input.Key } as CheckedJobRequest['input'],
    outputKeyPrefix: prefix,
    outputs: checked,
    userMetadata,
    customPresets: [...custom.values()].filter((preset) =>
      checked.some((o) => o.corePresetId === preset.id),
    ),
  }
}
