import SwaggerParser from '@apidevtools/swagger-parser'
import { afterEach, describe, expect, it } from 'vitest'
import { makeApp, type TestApp } from './helpers.ts'

// Owner A against owner B on every route: test/owners.test.ts (memory and PostgreSQL).

describe('the OpenAPI document', () => {
  let t: TestApp
  afterEach(async () => {
    await t?.close()
  })

  it('declares the bearer scheme when owners are resolved, and every owned route refers to it', async () => {
    t = await makeApp({ worker: false, owner: () => 'alice' })
    const document = t.app.swagger() as any
    expect(document.components.securitySchemes).toEqual({
      bearerAuth: { type: 'http', scheme: 'bearer' },
    })
    for (const [path, operations] of Object.entries<Record<string, any>>(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const expected = path.startsWith('/files') ? undefined : [{ bearerAuth: [] }]
        expect(operation.security, `${method} ${path}`).toEqual(expected)
        if (expected) expect(operation.responses['401'], `${method} ${path}`).toBeDefined()
      }
    }
    await SwaggerParser.validate(structuredClone(document))
  })

  it('declares the scheme the app describes, and none when there are no owners', async () => {
    t = await makeApp({
      worker: false,
      owner: () => 'alice',
      openapiSecurity: {
        name: 'apiKey',
        scheme: { type: 'apiKey', in: 'header', name: 'x-api-key' },
      },
    })
    const document = t.app.swagger() as any
    expect(document.components.securitySchemes).toEqual({
      apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' },
    })
    expect(document.paths['/jobs/{id}'].get.security).toEqual([{ apiKey: [] }])
    await t.close()

    t = await makeApp({ worker: false })
    const open = t.app.swagger() as any
    expect(open.components.securitySchemes).toBeUndefined()
    expect(open.paths['/jobs/{id}'].get.security).toBeUndefined()
  })
})
