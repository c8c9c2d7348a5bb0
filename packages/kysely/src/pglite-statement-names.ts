/**
 * Prepared statements and portals of one wire connection, kept apart from the others'.
 *
 * Every connection of the wire server runs on PGlite's one session, where named statements
 * would be shared: a second connection preparing the statement a first one prepared under the
 * same name (as every connection of a `pg` pool does with named queries) would fail with
 * `prepared statement … already exists`, and could run another connection's statement. So the
 * names a connection sends in its extended-protocol messages (Parse, Bind, Describe, Close,
 * Execute) are given a prefix of its own on the way in; the unnamed statement and portal stay
 * unnamed (a turn never splits them). The answers carry no names.
 */
export class ConnectionNames {
  readonly #prefix: Buffer
  /** The statements this connection prepared and did not close, by their name in the session. */
  readonly statements = new Set<string>()

  constructor(id: number) {
    this.#prefix = Buffer.from(`c${id}_`)
  }

  /** `message` (one whole frontend message, type byte first) with its names scoped. */
  scope(message: Buffer): Buffer {
    switch (String.fromCharCode(message[0]!)) {
      case 'P': {
        // Parse: statement name, query, parameter types.
        const scoped = this.#rewrite(message, 5, 1)
        const name = readCString(scoped, 5)
        if (name !== '') this.statements.add(name)
        return scoped
      }
      case 'B': // Bind: portal name, statement name, …
        return this.#rewrite(message, 5, 2)
      case 'E': // Execute: portal name, row limit.
        return this.#rewrite(message, 5, 1)
      case 'D': // Describe: 'S' or 'P', then the name.
        return this.#rewrite(message, 6, 1)
      case 'C': {
        // Close: 'S' or 'P', then the name.
        const scoped = this.#rewrite(message, 6, 1)
        if (scoped[5] === 0x53) this.statements.delete(readCString(scoped, 6))
        return scoped
      }
      default:
        return message
    }
  }

  /** Close messages for the statements still open, for when the connection goes away. */
  closeAll(): Buffer[] {
    return [...this.statements].map((name) =>
      frame('C', Buffer.concat([Buffer.from('S'), Buffer.from(`${name}\0`)])),
    )
  }

  /** Prefixes the `count` C strings from `offset` that are not empty. */
  #rewrite(message: Buffer, offset: number, count: number): Buffer {
    const names: number[] = []
    let at = offset
    for (let index = 0; index < count; index++) {
      const end = message.indexOf(0, at)
      if (end < 0) return message // malformed: PGlite answers it with its own error
      if (end > at) names.push(at)
      at = end + 1
    }
    if (names.length === 0) return message
    const scoped = Buffer.allocUnsafe(message.length + names.length * this.#prefix.length)
    let from = 0
    let to = 0
    for (const name of names) {
      to += message.copy(scoped, to, from, name)
      to += this.#prefix.copy(scoped, to)
      from = name
    }
    message.copy(scoped, to, from)
    scoped.writeInt32BE(scoped.length - 1, 1)
    return scoped
  }
}

function readCString(buffer: Buffer, offset: number): string {
  return buffer.toString('utf8', offset, buffer.indexOf(0, offset))
}

/** A frontend message: its type, its length (including itself), its body. */
export function frame(type: string, body: Buffer): Buffer {
  const framed = Buffer.alloc(5 + body.length)
  framed.write(type, 0)
  framed.writeInt32BE(4 + body.length, 1)
  body.copy(framed, 5)
  return framed
}
