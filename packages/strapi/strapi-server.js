// The server entry Strapi 5 loads for the plugin (`exports['./strapi-server']`). Strapi
// loads it with require(): Node 22.12+ returns this ES module's namespace, whose named
// exports are the plugin's register, bootstrap, destroy, config and services.
export { bootstrap, config, destroy, register, services } from './src/strapi-plugin.ts'
