import fc from 'fast-check'
import t from 'tap'
import { SwarmError, type ErrorKind } from '../types/errors.js'
import { swarmError } from '../test-helpers.test-helper.js'
import { decodeDataSpec, goBase64Error, isValidSecretName, MAX_CONFIG_SIZE, MAX_SECRET_SIZE, validateDataSpec } from './secret-spec.js'

const RPC = 'rpc error: code = InvalidArgument desc = '
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64')
const BAD_NAME = `${RPC}invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]`
const BAD_SIZE = `${RPC}secret data must be larger than 0 and less than 512000 bytes`

t.test('accepts a valid spec and decodes the data', async t => {
  const got = validateDataSpec({ Name: 'db.pass_1-x', Labels: { a: 'b' }, Data: b64('hunter2') }, 'secret')
  t.same(got, { Name: 'db.pass_1-x', Labels: { a: 'b' }, Data: Buffer.from('hunter2') })
  t.same(validateDataSpec({ name: 'x', data: b64('y') }, 'secret'), { Name: 'x', Labels: {}, Data: Buffer.from('y') }, 'keys match case-insensitively, like Go')
  t.same(validateDataSpec({ Name: 'x', Data: 'eQ==\r\n' }, 'secret').Data, Buffer.from('y'), 'CR/LF are skipped')
  t.equal(validateDataSpec({ Name: 'a'.repeat(64), Data: b64(Buffer.alloc(MAX_SECRET_SIZE - 1)) }, 'secret').Data.length, MAX_SECRET_SIZE - 1)
})

const cases: [string, unknown, ErrorKind, string][] = [
  ['empty body', undefined, 'invalid_argument', `${RPC}name must be provided`],
  ['null body', null, 'invalid_argument', `${RPC}name must be provided`],
  ['array body', [], 'invalid_argument', 'invalid JSON: json: cannot unmarshal array into Go value of type swarm.SecretSpec'],
  ['string body', 'x', 'invalid_argument', 'invalid JSON: json: cannot unmarshal string into Go value of type swarm.SecretSpec'],
  ['number name', { Name: 1 }, 'invalid_argument', 'invalid JSON: json: cannot unmarshal number into Go struct field SecretSpec.Name of type string'],
  ['array labels', { Name: 'x', Labels: [] }, 'invalid_argument', 'invalid JSON: json: cannot unmarshal array into Go struct field SecretSpec.Labels of type map[string]string'],
  ['bool label value', { Name: 'x', Labels: { a: true } }, 'invalid_argument', 'invalid JSON: json: cannot unmarshal bool into Go struct field SecretSpec.Labels of type string'],
  ['object data', { Name: 'x', Data: {} }, 'invalid_argument', 'invalid JSON: json: cannot unmarshal object into Go struct field SecretSpec.Data of type []uint8'],
  ['unpadded data', { Name: 'x', Data: 'aGVsbG8' }, 'invalid_argument', 'invalid JSON: illegal base64 data at input byte 4'],
  ['bad base64 char', { Name: 'x', Data: 'ab$d' }, 'invalid_argument', 'invalid JSON: illegal base64 data at input byte 2'],
  ['empty name', { Name: '', Data: b64('x') }, 'invalid_argument', `${RPC}name must be provided`],
  ['name with space', { Name: 'a b', Data: b64('x') }, 'invalid_argument', BAD_NAME],
  ['name starting with a dot', { Name: '.a', Data: b64('x') }, 'invalid_argument', BAD_NAME],
  ['name ending with a dash', { Name: 'a-', Data: b64('x') }, 'invalid_argument', BAD_NAME],
  ['name of 65 chars', { Name: 'a'.repeat(65), Data: b64('x') }, 'invalid_argument', BAD_NAME],
  ['no data', { Name: 'x' }, 'invalid_argument', BAD_SIZE],
  ['empty data', { Name: 'x', Data: '' }, 'invalid_argument', BAD_SIZE],
  ['500 KiB of data', { Name: 'x', Data: b64(Buffer.alloc(MAX_SECRET_SIZE)) }, 'invalid_argument', BAD_SIZE],
  ['a driver', { Name: 'x', Data: b64('x'), Driver: { Name: 'vault' } }, 'invalid_argument', 'secret drivers are not supported'],
]

t.test('rejects with Docker\'s texts', async t => {
  for (const [what, body, kind, message] of cases) {
    t.throws(() => validateDataSpec(body, 'secret'), swarmError(kind, message), what)
  }
})

t.test('Go base64 error offsets', async t => {
  const offsets: [string, number | undefined][] = [
    ['', undefined], ['QQ==', undefined], ['QUJD\nREVG', undefined], ['QUJD\n', undefined], ['QQ=\r\n=', undefined],
    ['QQ', 0], ['aGVsbG8', 4], ['!!!!', 0], ['QQ=', 3], ['QQ=x', 2], ['QQ==QQ==', 4], ['Q===', 1], ['QUJD=', 4], ['QUJ=\nx', 5], ['é', 0],
  ]
  for (const [text, at] of offsets) t.equal(goBase64Error(Buffer.from(text)), at, JSON.stringify(text))
})

t.test('every canonical encoding is valid and decodes back', async t => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), bytes => {
      const text = b64(Buffer.from(bytes))
      return goBase64Error(Buffer.from(text)) === undefined && validateDataSpec({ Name: 's', Data: text }, 'secret').Data.equals(Buffer.from(bytes))
    }),
  )
  t.throws(() => validateDataSpec({ Name: 's', Data: '' }, 'secret'), swarmError('invalid_argument', BAD_SIZE))
})

t.test('arbitrary JSON never throws anything but an invalid-argument SwarmError', async t => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.jsonValue(), fc.jsonValue(), (body, name, data) => {
      for (const b of [body, { Name: name, Data: data }, { Name: 'n', Data: data, Labels: name }]) {
        try {
          validateDataSpec(b, 'secret')
        } catch (e) {
          if (!(e instanceof SwarmError) || e.kind !== 'invalid_argument') throw e
        }
      }
    }),
  )
  t.pass()
})

t.test('name rule matches swarmkit\'s regular expression', async t => {
  const swarmkit = /^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$/
  fc.assert(
    fc.property(fc.stringMatching(/^[a-zA-Z0-9._ -]{0,70}$/), name => isValidSecretName(name) === (name.length <= 64 && swarmkit.test(name))),
  )
  t.pass()
})

t.test('configs: the same rules with their own size and words', async t => {
  t.equal(validateDataSpec({ Name: 'c', Data: b64(Buffer.alloc(MAX_CONFIG_SIZE - 1)) }, 'config').Data.length, MAX_CONFIG_SIZE - 1, 'past the secrets\' 500 KiB')
  const BAD = `${RPC}config data must be larger than 0 and less than 1024000 bytes`
  t.throws(() => validateDataSpec({ Name: 'c', Data: b64(Buffer.alloc(MAX_CONFIG_SIZE)) }, 'config'), swarmError('invalid_argument', BAD))
  t.throws(() => validateDataSpec({ Name: 'c' }, 'config'), swarmError('invalid_argument', BAD))
  t.throws(() => validateDataSpec({ Name: 1 }, 'config'), swarmError('invalid_argument', 'invalid JSON: json: cannot unmarshal number into Go struct field ConfigSpec.Name of type string'))
  t.throws(() => validateDataSpec([], 'config'), swarmError('invalid_argument', 'invalid JSON: json: cannot unmarshal array into Go value of type swarm.ConfigSpec'))
  t.throws(() => validateDataSpec({ Name: 'c', Data: b64('x'), Templating: { Name: 'golang' } }, 'config'), swarmError('invalid_argument', 'config templating is not supported'))
  t.same(validateDataSpec({ Name: 'c', Data: b64('x'), Driver: { Name: 'ignored by dockerd: no such field' } }, 'config').Data, Buffer.from('x'), 'a ConfigSpec has no Driver field')
  t.same(decodeDataSpec({ Name: 'c', Labels: { a: 'b' } }, 'config'), { Name: 'c', Labels: { a: 'b' }, Data: undefined }, 'an update may leave the data out')
})
