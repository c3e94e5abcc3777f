import t, { type Test } from 'tap'
import { loadCompose } from './compose-load.js'

const load = (text: string, env: Record<string, string> = {}, warn: (m: string) => void = () => undefined) => loadCompose('stack.yml', text, k => env[k], warn)
const rejects = (t: Test, text: string, message: string, what: string): void => {
  t.throws(() => load(text), { code: 'E_COMPOSE', message }, what)
}

t.test('a valid file: YAML anchors and merges, Go\'s octal modes, variables substituted', async t => {
  const warnings: string[] = []
  const c = load(
    `x-common: &common
  image: app:\${TAG}
  environment: { A: "1" }
services:
  web:
    <<: *common
    secrets:
      - source: pw
        mode: 0440
  api:
    <<: *common
    image: api:\${MISSING}
secrets:
  pw:
    file: ./pw.txt
`,
    { TAG: '7' },
    w => warnings.push(w),
  )
  t.same(c.config.services, {
    web: { image: 'app:7', environment: { A: '1' }, secrets: [{ source: 'pw', mode: 0o440 }] },
    api: { image: 'api:', environment: { A: '1' } },
  })
  t.same(warnings, ['The "MISSING" variable is not set. Defaulting to a blank string.'])
  t.equal(c.file, 'stack.yml')
})

t.test('errors name the file, the line and column, and the path in it', async t => {
  const text = (body: string) => `services:\n  web:\n    image: alpine\n${body}`
  rejects(t, text('    imagee: x\n'), 'stack.yml:4:5: services.web Additional property imagee is not allowed', 'an unknown key, at the key')
  rejects(t, 'services: {}\nvolumez: {}\n', 'stack.yml:2:1: (root) Additional property volumez is not allowed', 'at the root')
  rejects(t, text('    deploy:\n      replicas: [2]\n'), 'stack.yml:5:7: services.web.deploy.replicas must be a integer or string', 'a type')
  rejects(t, text('    command: 5\n'), 'stack.yml:4:5: services.web.command must be a null or string or array', 'the types of every branch of a oneOf')
  rejects(t, text('    deploy:\n      update_config: { order: sideways }\n'), 'stack.yml:5:24: services.web.deploy.update_config.order must be one of the following: "start-first", "stop-first"', 'an enum')
  rejects(t, text('    ports:\n      - { target: [80] }\n'), 'stack.yml:5:11: services.web.ports.0.target must be a integer or string', 'the deepest failing value of a oneOf')
  rejects(t, 'services:\n  web: [\n', 'stack.yml:3:1: Flow sequence in block collection must be sufficiently indented and end with a ]', 'YAML syntax')
  rejects(t, text('    hostname: ${H:?give a hostname}\n'), 'stack.yml:4:5: services.web.hostname: required variable H is missing a value: give a hostname', 'a required variable')
  rejects(t, text('    hostname: $\n'), 'stack.yml:4:5: invalid interpolation format for services.web.hostname: "$". You may need to escape any $ with another $.', 'a lone $')
  rejects(t, '', 'stack.yml: empty compose file', 'empty')
  rejects(t, '- a\n', 'stack.yml:1:1: Top-level object must be a mapping', 'not a mapping')
})
