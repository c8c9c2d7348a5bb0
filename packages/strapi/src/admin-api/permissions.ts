import type { StrapiHost } from '../strapi-host.ts'

/** The plugin's name in Strapi: actions are `plugin::transcodekit.<uid>`. */
export const PLUGIN_NAME = 'transcodekit'

/** The admin permissions the plugin registers, by what each allows. */
export const ADMIN_ACTIONS = {
  /** See the jobs page and a file's outputs. */
  read: `plugin::${PLUGIN_NAME}.read`,
  /** Run a failed or canceled job again. */
  retry: `plugin::${PLUGIN_NAME}.retry`,
  /** Stop a job that has not ended. */
  cancel: `plugin::${PLUGIN_NAME}.cancel`,
} as const

/**
 * Registers the plugin's actions with Strapi's admin RBAC (Settings › Roles › Plugins), so a
 * super admin may give each role read, retry and cancel separately.
 */
export async function registerAdminPermissions(strapi: StrapiHost): Promise<void> {
  const permissions = strapi.service?.('admin::permission') as
    | { actionProvider?: { registerMany(actions: object[]): Promise<void> } }
    | undefined
  const provider = permissions?.actionProvider
  // Strapi without its admin (a headless test host): nothing to register with.
  if (!provider) return
  await provider.registerMany([
    {
      section: 'plugins',
      displayName: 'Read jobs and outputs',
      uid: 'read',
      pluginName: PLUGIN_NAME,
    },
    { section: 'plugins', displayName: 'Retry jobs', uid: 'retry', pluginName: PLUGIN_NAME },
    { section: 'plugins', displayName: 'Cancel jobs', uid: 'cancel', pluginName: PLUGIN_NAME },
  ])
}
