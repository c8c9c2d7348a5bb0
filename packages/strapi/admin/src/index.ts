import { Play } from '@strapi/icons'
import type { ComponentType } from 'react'
import { PLUGIN_ID, READ_ACTION } from './plugin-id.ts'

/** The parts of Strapi 5's admin app (`StrapiApp`) the plugin registers with. */
export interface StrapiAdminApp {
  addMenuLink(link: {
    to: string
    icon: ComponentType
    intlLabel: { id: string; defaultMessage: string }
    Component: () => Promise<{ default: ComponentType }>
    permissions: Array<{ action: string; subject: string | null }>
  }): void
  registerPlugin(plugin: { id: string; name: string }): void
}

/**
 * The plugin's admin part (`@transcodekit/strapi/strapi-admin`): a menu link to the jobs page,
 * shown to admins whose role holds the plugin's read permission.
 */
export default {
  register(app: StrapiAdminApp): void {
    app.addMenuLink({
      to: `plugins/${PLUGIN_ID}`,
      icon: Play,
      intlLabel: { id: `${PLUGIN_ID}.plugin.name`, defaultMessage: 'Transcoding' },
      Component: () => import('./pages/app.js'),
      permissions: [{ action: READ_ACTION, subject: null }],
    })
    app.registerPlugin({ id: PLUGIN_ID, name: PLUGIN_ID })
  },

  /** No translations yet: every label has its English default. */
  async registerTrads(): Promise<Array<{ data: Record<string, string>; locale: string }>> {
    return []
  },
}
