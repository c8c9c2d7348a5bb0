import type { Core } from '@strapi/strapi'

export default ({ env }: Core.Config.Shared.ConfigParams): Core.Config.Server => ({
  host: env('HOST', '127.0.0.1'),
  port: env.int('PORT', 1337),
  app: { keys: env.array('APP_KEYS') },
  // Uploads (and transcodekit's outputs, in uploads/transcodekit) live under this folder.
  dirs: { public: env('PUBLIC_DIR', './public') },
})
