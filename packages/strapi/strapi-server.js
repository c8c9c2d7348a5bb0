// The server entry Strapi 5 loads for the plugin (`strapi-server.js` at the package root, also
// exported as `./strapi-server`). Strapi loads it with require(): Node 22.12+ returns this ES
// module's namespace, whose named exports are the plugin's register, bootstrap, destroy, config
// and services. It imports the plugin through the package's own exports, so that the workspace
// runs the TypeScript sources and the published package its build (dist/).
export {
  bootstrap,
  config,
  controllers,
  destroy,
  register,
  routes,
  services,
} from '@transcodekit/strapi/strapi-plugin'
