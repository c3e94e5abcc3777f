import t from 'tap'
import { convertStack, type StackPlan } from './compose-convert.js'
import { loadCompose } from './compose-load.js'

const FILES: Record<string, string> = { '/stk/pw.txt': 'hunter2', '/stk/app.conf': 'listen 80', '/stk/web.env': '# comment\nFROM_FILE=1\n  SPACED=a b\nEMPTY_IN_FILE=\nPASSED\nUNSET_PASS\n' }
const ENV: Record<string, string> = { PASSED: 'p', EMPTY_IN_FILE: 'from-env', DEPLOYER: 'd', TOKEN: 's3' }

function plan(text: string, namespace = 'st'): StackPlan {
  const c = loadCompose('/stk/stack.yml', text, k => ENV[k], () => undefined)
  return convertStack(c, namespace, {
    env: k => ENV[k],
    readFile: p => {
      if (FILES[p] === undefined) throw new Error(`ENOENT: no such file or directory, open '${p}'`)
      return Buffer.from(FILES[p]!)
    },
  })
}

const FULL = `
services:
  web:
    image: registry:5000/team/web
    command: sh -c 'echo "hi there"; sleep 9'
    entrypoint: [/bin/tini, --]
    environment:
      A: 1
      DEPLOYER:
    env_file: web.env
    labels: [tier=front]
    working_dir: /srv
    user: "1000"
    hostname: "{{.Task.Name}}"
    stop_grace_period: 1m30s
    init: true
    ports:
      - "8080:80"
      - "9000-9001:90-91/udp"
      - target: 443
        published: 8443
        mode: host
    networks:
      front:
        aliases: [www]
      ext: {}
    secrets:
      - pw
      - source: token
        target: tok
        mode: 0400
    configs:
      - source: app
        target: /etc/app.conf
    healthcheck:
      test: curl -f http://localhost/
      interval: 10s
      timeout: 2s
      retries: 3
      start_period: 1s
    deploy:
      replicas: 3
      labels: { team: a }
      endpoint_mode: VIP
      placement:
        constraints: [node.role == worker]
        preferences: [{ spread: node.labels.zone }]
        max_replicas_per_node: 2
      resources:
        limits: { cpus: "0.5", memory: 512M }
        reservations: { cpus: 0.25, memory: 64m }
      restart_policy: { condition: on-failure, delay: 5s, max_attempts: 3, window: 1m }
      update_config: { parallelism: 2, delay: 10s, failure_action: rollback, monitor: 30s, max_failure_ratio: 0.1, order: start-first }
      rollback_config: { order: stop-first }
  worker:
    image: alpine@sha256:${'a'.repeat(64)}
    restart: on-failure:4
    deploy:
      mode: global
    healthcheck:
      disable: true
networks:
  front:
    driver_opts: { encrypted: "" }
    attachable: true
    labels: { n: "1" }
    ipam:
      config: [{ subnet: 10.20.0.0/24 }]
  ext:
    external: true
    name: shared-net
secrets:
  pw:
    file: ./pw.txt
  token:
    environment: TOKEN
    labels: [s=1]
configs:
  app:
    file: /stk/app.conf
  unused:
    content: inline
`

t.test('compose to ServiceSpec as docker\'s convert package maps it', async t => {
  const p = plan(FULL)
  t.same(p.networks, [
    { Name: 'st_default', Driver: 'overlay', Labels: { 'com.docker.stack.namespace': 'st' } },
    { Name: 'st_front', Driver: 'overlay', Labels: { n: '1', 'com.docker.stack.namespace': 'st' }, Options: { encrypted: '' }, Attachable: true, IPAM: { Config: [{ Subnet: '10.20.0.0/24' }] } },
  ], 'the networks services use, NAME_default for the one naming none')
  t.same(p.externalNetworks, ['shared-net'])
  t.same(p.secrets, [
    { Name: 'st_pw', Labels: { 'com.docker.stack.namespace': 'st' }, Data: Buffer.from('hunter2').toString('base64') },
    { Name: 'st_token', Labels: { s: '1', 'com.docker.stack.namespace': 'st' }, Data: Buffer.from('s3').toString('base64') },
  ])
  t.same(p.configs.map(c => [c.Name, Buffer.from(c.Data, 'base64').toString()]), [['st_app', 'listen 80'], ['st_unused', 'inline']])
  const [web, worker] = p.services
  t.same(web, {
    Name: 'st_web',
    Labels: { team: 'a', 'com.docker.stack.namespace': 'st', 'com.docker.stack.image': 'registry:5000/team/web' },
    TaskTemplate: {
      ContainerSpec: {
        Image: 'registry:5000/team/web:latest',
        Command: ['/bin/tini', '--'],
        Args: ['sh', '-c', 'echo "hi there"; sleep 9'],
        Hostname: '{{.Task.Name}}',
        Env: ['A=1', 'DEPLOYER=d', 'EMPTY_IN_FILE=from-env', 'FROM_FILE=1', 'PASSED=p', 'SPACED=a b'],
        Labels: { tier: 'front', 'com.docker.stack.namespace': 'st' },
        Dir: '/srv',
        User: '1000',
        StopGracePeriod: 90e9,
        Secrets: [
          { SecretID: '', SecretName: 'st_pw', File: { Name: 'pw', UID: '0', GID: '0', Mode: 0o444 } },
          { SecretID: '', SecretName: 'st_token', File: { Name: 'tok', UID: '0', GID: '0', Mode: 0o400 } },
        ],
        Configs: [{ ConfigID: '', ConfigName: 'st_app', File: { Name: '/etc/app.conf', UID: '0', GID: '0', Mode: 0o444 } }],
        Healthcheck: { Test: ['CMD-SHELL', 'curl -f http://localhost/'], Interval: 10e9, Timeout: 2e9, StartPeriod: 1e9, StartInterval: 0, Retries: 3 },
        Init: true,
      },
      Resources: { Limits: { NanoCPUs: 5e8, MemoryBytes: 512 * 2 ** 20 }, Reservations: { NanoCPUs: 2.5e8, MemoryBytes: 64 * 2 ** 20 } },
      RestartPolicy: { Condition: 'on-failure', Delay: 5e9, MaxAttempts: 3, Window: 60e9 },
      Placement: { Constraints: ['node.role == worker'], Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }], MaxReplicas: 2 },
      Networks: [
        { Target: 'shared-net', Aliases: ['web'] },
        { Target: 'st_front', Aliases: ['www', 'web'] },
      ],
    },
    Mode: { Replicated: { Replicas: 3 } },
    UpdateConfig: { Parallelism: 2, Delay: 10e9, FailureAction: 'rollback', Monitor: 30e9, MaxFailureRatio: 0.1, Order: 'start-first' },
    RollbackConfig: { Parallelism: 1, Delay: 0, Monitor: 0, MaxFailureRatio: 0, Order: 'stop-first' },
    EndpointSpec: {
      Mode: 'vip',
      Ports: [
        { Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' },
        { Protocol: 'tcp', TargetPort: 443, PublishedPort: 8443, PublishMode: 'host' },
        { Protocol: 'udp', TargetPort: 90, PublishedPort: 9000, PublishMode: 'ingress' },
        { Protocol: 'udp', TargetPort: 91, PublishedPort: 9001, PublishMode: 'ingress' },
      ],
    },
  })
  t.same(worker!.Mode, { Global: {} })
  t.equal(worker!.TaskTemplate.ContainerSpec.Image, `alpine@sha256:${'a'.repeat(64)}`, 'a digest is left as it is')
  t.same(worker!.TaskTemplate.RestartPolicy, { Condition: 'on-failure', MaxAttempts: 4 }, 'restart: on-failure:N without a deploy policy')
  t.same(worker!.TaskTemplate.ContainerSpec.Healthcheck, { Test: ['NONE'] })
  t.same(worker!.TaskTemplate.Networks, [{ Target: 'st_default', Aliases: ['worker'] }])
  t.same(worker!.Mode, { Global: {} })
  t.same(plan('services:\n  a:\n    image: x\n').services[0]!.Mode, { Replicated: {} }, 'no replicas: the daemon\'s default, a redeploy keeps the count')
})

t.test('docker\'s warnings for what it ignores; refusals, by path, of what would be dropped', async t => {
  t.same(plan('services:\n  a:\n    image: x\n    build: .\n    container_name: cc\n').warnings, ['Ignoring unsupported options: build', 'Ignoring deprecated options: container_name'])
  const bad: [string, string][] = [
    ['services:\n  a:\n    image: x\n    volumes: [d:/d]\n', '/stk/stack.yml:4:5: services.a.volumes: not supported by swarmd stacks'],
    ['services:\n  a:\n    image: x\n    deploy:\n      resources:\n        limits: { pids: 3 }\n', '/stk/stack.yml:6:19: services.a.deploy.resources.limits.pids: not supported by swarmd stacks'],
    ['services:\n  a:\n    image: x\nvolumes:\n  d: {}\n', '/stk/stack.yml:4:1: volumes: not supported by swarmd stacks'],
    ['services:\n  a:\n    build: .\n', '/stk/stack.yml:2:3: services.a: no image given (swarm services run images; build is not supported)'],
    ['services:\n  a:\n    image: x\n    networks: [nope]\n', '/stk/stack.yml:4:16: services.a.networks.0: service "a" references network "nope", which is not declared'],
    ['services:\n  a:\n    image: x\n    configs: [nope]\n', '/stk/stack.yml:4:15: services.a.configs.0: undefined config "nope"'],
    ['services:\n  a:\n    image: x\n    deploy: { mode: global, replicas: 2 }\n', '/stk/stack.yml:4:15: services.a.deploy.mode: replicas can only be used with replicated or replicated-job mode'],
    ['services:\n  a:\n    image: x\n    deploy: { mode: sideways }\n', '/stk/stack.yml:4:15: services.a.deploy.mode: Unknown mode: sideways'],
    ['services:\n  a:\n    image: x\n    stop_grace_period: soon\n', '/stk/stack.yml:4:5: services.a.stop_grace_period: time: invalid duration "soon"'],
    ['services:\n  a:\n    image: x\n    ports: [{ published: 80 }]\n', '/stk/stack.yml:4:13: services.a.ports.0: target is required'],
    ['services:\n  a:\n    image: x\n    ports: ["70000:80"]\n', '/stk/stack.yml:4:13: services.a.ports.0: invalid port range "70000:80"'],
    ['services:\n  a:\n    image: x\n    env_file: missing.env\n', "/stk/stack.yml:4:5: services.a.env_file: cannot read /stk/missing.env: ENOENT: no such file or directory, open '/stk/missing.env'"],
    ['services:\n  a:\n    image: x\nsecrets:\n  s: { environment: NOPE }\n', '/stk/stack.yml:5:8: secrets.s.environment: the variable NOPE is not set'],
    ['services:\n  a:\n    image: x\n    restart: sometimes\n', '/stk/stack.yml:4:5: services.a.restart: unknown restart policy: sometimes'],
  ]
  for (const [text, message] of bad) t.throws(() => plan(text), { code: 'E_COMPOSE', message }, message)
  t.same(plan('services:\n  a:\n    image: x\n    env_file: [{ path: missing.env, required: false }]\n').services[0]!.TaskTemplate.ContainerSpec.Env, undefined, 'an optional env_file may be missing')
})
