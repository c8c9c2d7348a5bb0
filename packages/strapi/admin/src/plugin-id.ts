/** The plugin's name in Strapi (`strapi.name` in package.json); its admin pages live under it. */
export const PLUGIN_ID = 'transcodekit'

/** The admin permission that opens the plugin's page (see the server's admin-api/permissions). */
export const READ_ACTION = `plugin::${PLUGIN_ID}.read`
export const RETRY_ACTION = `plugin::${PLUGIN_ID}.retry`
export const CANCEL_ACTION = `plugin::${PLUGIN_ID}.cancel`
