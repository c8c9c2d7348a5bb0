import { Box, Flex, Link, Typography } from '@strapi/design-system'
import { Download } from '@strapi/icons'
import type { AdminOutput } from '../api.ts'
import { StateBadge } from './state-badge.tsx'

/** One output: a player fitting its type (audio, video or picture) and a download link. */
export function OutputPlayer({ output }: { output: AdminOutput }) {
  const kind = output.mime.split('/')[0]
  return (
    <Box
      padding={4}
      background="neutral0"
      hasRadius
      shadow="tableShadow"
      data-output={output.preset}
    >
      <Flex direction="column" alignItems="stretch" gap={3}>
        <Flex gap={3}>
          <Typography variant="delta">{output.preset}</Typography>
          <StateBadge state={output.state} />
          <Typography variant="pi" textColor="neutral600">
            {output.mime}
            {output.size !== null ? ` · ${formatBytes(output.size)}` : ''}
            {output.durationSec !== null ? ` · ${output.durationSec.toFixed(1)} s` : ''}
          </Typography>
        </Flex>
        {output.url && kind === 'audio' && (
          // biome-ignore lint/a11y/useMediaCaption: transcoded audio has no caption track
          <audio controls preload="auto" src={output.url} style={{ width: '100%' }} />
        )}
        {output.url && kind === 'video' && (
          // biome-ignore lint/a11y/useMediaCaption: transcoded video has no caption track
          <video controls preload="auto" src={output.url} style={{ maxWidth: '100%' }} />
        )}
        {output.url && kind === 'image' && (
          <img src={output.url} alt={`${output.preset} output`} style={{ maxWidth: '100%' }} />
        )}
        {output.url && (
          <Link href={output.url} download isExternal={false} startIcon={<Download />}>
            Download {output.preset}
          </Link>
        )}
      </Flex>
    </Box>
  )
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`
}
