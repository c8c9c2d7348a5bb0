// The parts of `@strapi/strapi/admin` the plugin's admin part uses, typed here so that the
// workspace needs no `@strapi/strapi` to build it: the Strapi app that bundles the plugin
// (`strapi build`) provides the module itself.
declare module '@strapi/strapi/admin' {
  export interface FetchResponse<T> {
    data: T
    status?: number
  }
  export interface FetchClient {
    get<T = unknown>(url: string, options?: { signal?: AbortSignal }): Promise<FetchResponse<T>>
    post<T = unknown>(
      url: string,
      body?: unknown,
      options?: { signal?: AbortSignal },
    ): Promise<FetchResponse<T>>
  }
  /** The admin's HTTP client: it sends the signed-in admin's token. */
  export function useFetchClient(): FetchClient
  /** Whether an error thrown by the fetch client is an HTTP error answer. */
  export function isFetchError(error: unknown): error is Error & {
    response?: { data?: { error?: { code?: string; message?: string } } }
  }
}
