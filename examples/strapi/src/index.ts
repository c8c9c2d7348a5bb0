import type { Core } from '@strapi/strapi'

// Nothing to wire here: the transcodekit plugin subscribes to media uploads itself
// (see config/plugins.ts).
export default {
  register(_context: { strapi: Core.Strapi }) {},
  bootstrap(_context: { strapi: Core.Strapi }) {},
}
