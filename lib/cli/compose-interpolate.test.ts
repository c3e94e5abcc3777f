import t from 'tap'
import { interpolate, InterpolationError, substitute } from './compose-interpolate.js'

const ENV: Record<string, string> = { TAG: '1.2', EMPTY: '', NAME: 'web' }
const env = (k: string): string | undefined => ENV[k]

t.test('docker\'s substitutions', async t => {
  const warnings: string[] = []
  const s = (v: string): string => substitute(v, env, ['services', 'web', 'image'], w => warnings.push(w))
  t.equal(s('app:$TAG'), 'app:1.2')
  t.equal(s('app:${TAG}-x'), 'app:1.2-x')
  t.equal(s('$$TAG costs $$5'), '$TAG costs $5', '$$ is a dollar')
  t.equal(s('${EMPTY:-def}|${EMPTY-def}|${UNSET-def}|${UNSET:-${NAME}}'), 'def||def|web')
  t.equal(s('${TAG:?must}'), '1.2')
  t.same(warnings, [])
  t.equal(s('a${UNSET}b'), 'ab')
  t.same(warnings, ['The "UNSET" variable is not set. Defaulting to a blank string.'])
  t.throws(() => s('${EMPTY:?set it}'), new InterpolationError(['services', 'web', 'image'], 'services.web.image: required variable EMPTY is missing a value: set it'))
  t.throws(() => s('${UNSET?}'), { message: 'services.web.image: required variable UNSET is missing a value: ' })
  t.doesNotThrow(() => s('${EMPTY?}'), 'set but empty is enough for ?')
  for (const bad of ['cost $5', 'a$', '${}', '${a b}']) {
    t.throws(() => s(bad), { message: `invalid interpolation format for services.web.image: ${JSON.stringify(bad)}. You may need to escape any $ with another $.` }, bad)
  }
})

t.test('every string value, not keys; the path of each in errors', async t => {
  const out = interpolate({ services: { $TAG: { image: 'x:$TAG', ports: ['$TAG'], replicas: 2, init: true, n: null } } }, env, () => undefined)
  t.same(out, { services: { $TAG: { image: 'x:1.2', ports: ['1.2'], replicas: 2, init: true, n: null } } })
  const err = (() => {
    try {
      interpolate({ services: { web: { ports: ['ok', '$'] } } }, env, () => undefined)
    } catch (e) {
      return e as InterpolationError
    }
  })()
  t.same(err?.path, ['services', 'web', 'ports', '1'], 'where the bad value is')
})
