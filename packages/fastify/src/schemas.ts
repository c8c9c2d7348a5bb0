import { type Static, type TSchema, Type } from '@sinclair/typebox'

/** A reference to a shared schema (added with `addSchema`), typed as the schema itself. */
export function ref<T extends TSchema>(schema: T) {
  if (!schema.$id) throw new Error('a shared schema needs an $id')
  return Type.Unsafe<Static<T>>(Type.Ref(schema.$id))
}

const DateTime = Type.Unsafe<Date | string>({ type: 'string', format: 'date-time' })
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

export const JobStateSchema = Type.Union(
  [
    Type.Literal('submitted'),
    Type.Literal('progressing'),
    Type.Literal('complete'),
    Type.Literal('error'),
    Type.Literal('canceled'),
  ],
  {
    $id: 'TranscodekitJobState',
    title: 'JobState',
    description:
      'submitted → progressing → complete | error | canceled; terminal states never change',
  },
)

export const ErrorSchema = Type.Object(
  {
    statusCode: Type.Integer({ minimum: 400, maximum: 599 }),
    code: Type.String({ description: 'Stable error code, `TRANSCODEKIT_…`' }),
    error: Type.String({ description: 'HTTP reason phrase' }),
    message: Type.String(),
  },
  { $id: 'TranscodekitError', title: 'Error', additionalProperties: false },
)

export const MediaStreamSchema = Type.Object(
  {
    index: Type.Integer(),
    type: Type.String(),
    codec: Type.String(),
    durationSec: Nullable(Type.Number()),
    bitRate: Nullable(Type.Number()),
    width: Type.Optional(Type.Integer()),
    height: Type.Optional(Type.Integer()),
    frameRate: Type.Optional(Type.Number()),
    sampleRate: Type.Optional(Type.Integer()),
    channels: Type.Optional(Type.Integer()),
  },
  { $id: 'TranscodekitMediaStream', title: 'MediaStream' },
)

export const AssetSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    originalFilename: Nullable(
      Type.String({ description: 'As the client sent it; metadata only, never a path' }),
    ),
    contentType: Type.String({ description: 'Detected from the bytes' }),
    size: Type.Integer(),
    sha256: Type.String(),
    media: Nullable(
      Type.Object(
        {
          formatName: Type.String(),
          durationSec: Nullable(Type.Number()),
          bitRate: Nullable(Type.Number()),
          streams: Type.Array(ref(MediaStreamSchema)),
        },
        {
          description:
            'What the probe learned; null until a worker probes an asset ingested unprobed (a CMS bulk import)',
        },
      ),
    ),
    createdAt: DateTime,
  },
  { $id: 'TranscodekitAsset', title: 'Asset' },
)

export const OutputSchema = Type.Object(
  {
    name: Type.String(),
    presetId: Type.String(),
    requestedPresetId: Nullable(
      Type.String({
        description:
          'The preset id as it was asked for (an Elastic Transcoder id such as 1351620000001-300300, or an alias), when not the canonical presetId',
      }),
    ),
    contentType: Type.String(),
    state: ref(JobStateSchema),
    size: Nullable(Type.Integer()),
    durationSec: Nullable(Type.Number()),
    url: Nullable(Type.String({ description: 'Where to read the output once complete' })),
    downloadUrl: Nullable(
      Type.String({
        description: "Where to download it, saved under a name made from the asset's filename",
      }),
    ),
    errorCode: Nullable(
      Type.String({
        description:
          'Why this output failed while its job completed (NO_FRAME: no still could be taken)',
      }),
    ),
    errorMessage: Nullable(Type.String()),
  },
  { $id: 'TranscodekitOutput', title: 'Output' },
)

export const JobSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    assetId: Type.String({ format: 'uuid' }),
    engine: Type.String(),
    engineJobId: Nullable(Type.String()),
    state: ref(JobStateSchema),
    progress: Type.Number({ minimum: 0, maximum: 100 }),
    errorCode: Nullable(Type.String()),
    errorMessage: Nullable(Type.String()),
    idempotencyKey: Nullable(Type.String()),
    attempts: Type.Integer(),
    outputs: Type.Array(ref(OutputSchema)),
    createdAt: DateTime,
    updatedAt: DateTime,
    finishedAt: Nullable(DateTime),
  },
  { $id: 'TranscodekitJob', title: 'Job' },
)

export const UploadResultSchema = Type.Object(
  { asset: ref(AssetSchema), job: ref(JobSchema) },
  { $id: 'TranscodekitUploadResult', title: 'UploadResult' },
)

export const AssetPageSchema = Type.Object(
  { items: Type.Array(ref(AssetSchema)), nextCursor: Nullable(Type.String()) },
  { $id: 'TranscodekitAssetPage', title: 'AssetPage' },
)

export const JobPageSchema = Type.Object(
  { items: Type.Array(ref(JobSchema)), nextCursor: Nullable(Type.String()) },
  { $id: 'TranscodekitJobPage', title: 'JobPage' },
)

export const PresetSummarySchema = Type.Object(
  {
    id: Type.String(),
    aliases: Type.Array(Type.String()),
    description: Type.String(),
    container: Type.String(),
    extension: Type.String(),
    contentType: Type.String(),
    needs: Type.Union([Type.Literal('audio'), Type.Literal('video')], {
      description: 'What the input must carry for the preset to apply',
    }),
    elasticTranscoderPresetId: Nullable(Type.String()),
  },
  { $id: 'TranscodekitPresetSummary', title: 'PresetSummary' },
)

export const PresetListSchema = Type.Object(
  { items: Type.Array(ref(PresetSummarySchema)) },
  { $id: 'TranscodekitPresetList', title: 'PresetList' },
)

/** Every shared schema, in an order where each one's references come first. */
export const sharedSchemas: TSchema[] = [
  JobStateSchema,
  ErrorSchema,
  MediaStreamSchema,
  AssetSchema,
  OutputSchema,
  JobSchema,
  UploadResultSchema,
  AssetPageSchema,
  JobPageSchema,
  PresetSummarySchema,
  PresetListSchema,
]

export const IdParamsSchema = Type.Object({ id: Type.String({ format: 'uuid' }) })

export const PageQuerySchema = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  cursor: Type.Optional(Type.String({ maxLength: 512 })),
})

/** Error answers, by status code, for a route's `response`. */
export function errorResponses<C extends number>(
  ...codes: C[]
): Record<C, ReturnType<typeof ref<typeof ErrorSchema>>> {
  const result = {} as Record<C, ReturnType<typeof ref<typeof ErrorSchema>>>
  for (const code of codes) result[code] = ref(ErrorSchema)
  return result
}

export type OutputView = Static<typeof OutputSchema>
export type JobView = Static<typeof JobSchema>
