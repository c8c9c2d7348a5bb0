import { describe, expect, it } from 'vitest'
import { ConnectionNames, frame } from '../src/pglite-statement-names.ts'

const cstrings = (...parts: string[]) => Buffer.from(parts.map((part) => `${part}\0`).join(''))
const int16 = (value: number) => Buffer.from([value >> 8, value & 0xff])

describe('ConnectionNames: statement and portal names of one wire connection', () => {
  it('prefixes named statements and portals in Parse, Bind, Execute, Describe and Close', () => {
    const names = new ConnectionNames(7)
    const parse = names.scope(
      frame('P', Buffer.concat([cstrings('get_job', 'select $1'), int16(0)])),
    )
    expect(parse).toEqual(
      frame('P', Buffer.concat([cstrings('c7_get_job', 'select $1'), int16(0)])),
    )
    const bindTail = Buffer.concat([int16(0), int16(1), Buffer.from([0, 0, 0, 1, 0x61]), int16(0)])
    expect(names.scope(frame('B', Buffer.concat([cstrings('', 'get_job'), bindTail])))).toEqual(
      frame('B', Buffer.concat([cstrings('', 'c7_get_job'), bindTail])),
    )
    expect(names.scope(frame('B', Buffer.concat([cstrings('p1', 'get_job'), bindTail])))).toEqual(
      frame('B', Buffer.concat([cstrings('c7_p1', 'c7_get_job'), bindTail])),
    )
    const rows = Buffer.from([0, 0, 0, 0])
    expect(names.scope(frame('E', Buffer.concat([cstrings('p1'), rows])))).toEqual(
      frame('E', Buffer.concat([cstrings('c7_p1'), rows])),
    )
    expect(names.scope(frame('D', Buffer.concat([Buffer.from('S'), cstrings('get_job')])))).toEqual(
      frame('D', Buffer.concat([Buffer.from('S'), cstrings('c7_get_job')])),
    )
    expect([...names.statements]).toEqual(['c7_get_job'])
    // Closing it forgets it; what is still open is closed when the connection goes.
    names.scope(frame('P', Buffer.concat([cstrings('other', 'select 1'), int16(0)])))
    expect(names.scope(frame('C', Buffer.concat([Buffer.from('S'), cstrings('get_job')])))).toEqual(
      frame('C', Buffer.concat([Buffer.from('S'), cstrings('c7_get_job')])),
    )
    expect(names.closeAll()).toEqual([
      frame('C', Buffer.concat([Buffer.from('S'), cstrings('c7_other')])),
    ])
  })

  it('leaves the unnamed statement and portal, other messages and malformed ones as they are', () => {
    const names = new ConnectionNames(1)
    for (const message of [
      frame('P', Buffer.concat([cstrings('', 'select 1'), int16(0)])),
      frame('B', Buffer.concat([cstrings('', ''), int16(0), int16(0), int16(0)])),
      frame('E', Buffer.concat([cstrings(''), Buffer.alloc(4)])),
      frame('S', Buffer.alloc(0)),
      frame('Q', cstrings('select 1')),
      frame('P', Buffer.from('no terminator')),
    ]) {
      expect(names.scope(message)).toBe(message)
    }
    expect(names.statements.size).toBe(0)
  })
})
