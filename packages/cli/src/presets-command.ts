import { createPresetCatalog, type Preset } from '@transcodekit/core'

/** `transcodekit presets --json`: every built-in preset, every field. */
export function presetRows(): readonly Preset[] {
  return createPresetCatalog().list()
}

/** `transcodekit presets`: one row per preset, columns padded to their widest cell. */
export function presetTable(): string {
  const header = ['ID', 'ALIASES', 'CONTAINER', 'CODECS']
  const rows = presetRows().map((preset) => [
    preset.id,
    (preset.aliases ?? []).join(', ') || '-',
    `${preset.container} (.${preset.extension})`,
    codecs(preset),
  ])
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]!.length)),
  )
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!)))
        .join('  '),
    )
    .join('\n')
}

function codecs(preset: Preset): string {
  const parts: string[] = []
  if (preset.video)
    parts.push(`${preset.video.codec} ≤${preset.video.maxWidth}×${preset.video.maxHeight}`)
  if (preset.audio) {
    const rate = preset.audio.bitrate ? ` ${preset.audio.bitrate / 1000}k` : ''
    parts.push(`${preset.audio.codec}${rate}`)
  }
  if (preset.image) parts.push(`${preset.image.format} ${preset.image.source}`)
  return parts.join(' + ')
}
