import { Box, Typography } from '@strapi/design-system'
import type { ReactNode } from 'react'

/** The title and subtitle of a plugin page. */
export function PageHeader({ title, subtitle }: { title: string; subtitle?: ReactNode }) {
  return (
    <Box paddingTop={8} paddingBottom={6} paddingLeft={10} paddingRight={10}>
      <Typography variant="alpha" tag="h1">
        {title}
      </Typography>
      {subtitle && (
        <Box paddingTop={1}>
          <Typography variant="epsilon" textColor="neutral600">
            {subtitle}
          </Typography>
        </Box>
      )}
    </Box>
  )
}
