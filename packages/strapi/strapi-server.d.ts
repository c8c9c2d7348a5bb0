// Types of strapi-server.js, the server entry Strapi loads for the plugin, as published
// (publishConfig.exports): the built plugin in dist/.
export {
  bootstrap,
  config,
  controllers,
  destroy,
  register,
  routes,
  services,
} from './dist/strapi-plugin.js'
