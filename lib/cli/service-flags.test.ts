import t from 'tap'
import fc from 'fast-check'
import { InvalidArgumentError } from 'commander'
import {
  createSpec,
  envEntry,
  formatGoDuration,
  hasSpecFlags,
  parseGoDuration,
  parseMemBytes,
  parseNanoCPUs,
  parsePublish,
  parseConfigRef,
  parseSecretRef,
  resolveConfigs,
  resolveSecrets,
  shellWords,
  updatePorts,
  updateSpec,
} from './service-flags.js'

t.test('Go durations parse as time.ParseDuration', async t => {
  t.equal(parseGoDuration('5s'), 5e9)
  t.equal(parseGoDuration('1m30s'), 90e9)
  t.equal(parseGoDuration('500ms'), 5e8)
  t.equal(parseGoDuration('1.5h'), 5400e9)
  t.equal(parseGoDuration('300us'), 300e3)
  t.equal(parseGoDuration('2µs'), 2e3)
  t.equal(parseGoDuration('0'), 0)
  t.equal(parseGoDuration('-1s'), -1e9)
  for (const bad of ['', '5', 'abc', '5x', '1m30', 's']) {
    t.throws(() => parseGoDuration(bad), new InvalidArgumentError(`time: invalid duration "${bad}"`), bad)
  }
})

t.test('Go durations print as time.Duration.String', async t => {
  t.equal(formatGoDuration(0), '0s')
  t.equal(formatGoDuration(5e9), '5s')
  t.equal(formatGoDuration(90e9), '1m30s')
  t.equal(formatGoDuration(3600e9), '1h0m0s')
  t.equal(formatGoDuration(5e8), '500ms')
  t.equal(formatGoDuration(1.5e9), '1.5s')
  t.equal(formatGoDuration(4), '4ns')
  t.equal(formatGoDuration(1500), '1.5µs')
})

t.test('printing then parsing a duration gives it back', async t => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 10 * 24 * 3600 * 1e9 }), ns => {
      return parseGoDuration(formatGoDuration(ns)) === ns
    }),
  )
})

t.test('--publish short syntax, ranges and protocols', async t => {
  t.same(parsePublish('8080:80'), [{ Protocol: 'tcp', PublishMode: 'ingress', TargetPort: 80, PublishedPort: 8080 }])
  t.same(parsePublish('53:53/udp'), [{ Protocol: 'udp', PublishMode: 'ingress', TargetPort: 53, PublishedPort: 53 }])
  t.same(parsePublish('80'), [{ Protocol: 'tcp', PublishMode: 'ingress', TargetPort: 80, PublishedPort: 0 }])
  t.same(
    parsePublish('8080-8081:80-81').map(p => [p.PublishedPort, p.TargetPort]),
    [
      [8080, 80],
      [8081, 81],
    ],
  )
  t.same(
    parsePublish('8080-8081:80').map(p => [p.PublishedPort, p.TargetPort]),
    [
      [8080, 80],
      [8081, 80],
    ],
  )
  t.throws(() => parsePublish('1.2.3.4:80:80'), { message: 'hostip is not supported' })
  t.throws(() => parsePublish('80/icmp'), { message: 'invalid proto: icmp' })
  t.throws(() => parsePublish('8080-8082:80-81'), InvalidArgumentError)
})

t.test('--publish long syntax', async t => {
  t.same(parsePublish('published=8080,target=80,protocol=udp,mode=host'), [{ Protocol: 'udp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'host' }])
  t.same(parsePublish('target=80'), [{ Protocol: 'tcp', TargetPort: 80, PublishMode: 'ingress' }])
  t.throws(() => parsePublish('published=8080,mode=host'), { message: "missing mandatory field 'target'" })
  t.throws(() => parsePublish('target=80,mode=bridge'), { message: "invalid publish mode value (bridge): must be either 'ingress' or 'host'" })
  t.throws(() => parsePublish('target=80,protocol=icmp'), { message: "invalid protocol value 'icmp'" })
  t.throws(() => parsePublish('target=80,foo=bar'), { message: 'invalid field key: foo' })
  t.throws(() => parsePublish('target=x80'), { message: 'invalid target port (x80): value must be an integer: invalid syntax' })
})

t.test('--secret simple and long syntax', async t => {
  t.same(parseSecretRef('db'), { SecretID: '', SecretName: 'db', File: { Name: 'db', UID: '0', GID: '0', Mode: 0o444 } })
  t.same(parseSecretRef('source=db,target=pw,mode=0400'), { SecretID: '', SecretName: 'db', File: { Name: 'pw', UID: '0', GID: '0', Mode: 0o400 } })
  t.same(parseSecretRef('src=db,uid=100,gid=101,mode=420').File, { Name: 'db', UID: '100', GID: '101', Mode: 420 })
  t.throws(() => parseSecretRef('target=x'), { message: 'source is required' })
  t.throws(() => parseSecretRef('source=x,color=red'), { message: 'invalid field in secret request: color' })
  t.throws(() => parseSecretRef('source=x,mode=09'), /invalid mode specified/)
  t.throws(() => parseSecretRef('source=x,junk'), { message: "invalid field 'junk' must be a key=value pair" })
})

t.test('secret names resolve to IDs; a missing one or a doubled target is an error', async t => {
  const secrets = [
    { ID: 'id-db', Spec: { Name: 'db' } },
    { ID: 'id-tls', Spec: { Name: 'tls' } },
  ]
  t.same(
    resolveSecrets([parseSecretRef('db'), parseSecretRef('source=tls,target=cert')], secrets).map(r => [r.SecretID, r.File?.Name]),
    [
      ['id-db', 'db'],
      ['id-tls', 'cert'],
    ],
  )
  t.throws(() => resolveSecrets([parseSecretRef('nope')], secrets), { message: 'secret not found: nope' })
  t.throws(() => resolveSecrets([parseSecretRef('db'), parseSecretRef('source=tls,target=db')], secrets), { message: 'duplicate secret target for tls not allowed' })
})

t.test('--config as docker\'s ConfigOpt: a target path, mode 0444 by default; names resolve to IDs', async t => {
  t.same(parseConfigRef('app'), { ConfigID: '', ConfigName: 'app', File: { Name: 'app', UID: '0', GID: '0', Mode: 0o444 } })
  t.same(parseConfigRef('source=app,target=/etc/app.conf,mode=0440'), { ConfigID: '', ConfigName: 'app', File: { Name: '/etc/app.conf', UID: '0', GID: '0', Mode: 0o440 } })
  t.throws(() => parseConfigRef('source=x,color=red'), { message: 'invalid field in config request: color' })
  t.throws(() => parseConfigRef('target=/x'), { message: 'source is required' })
  const configs = [{ ID: 'id-app', Spec: { Name: 'app' } }]
  t.same(resolveConfigs([parseConfigRef('source=app,target=/a'), parseConfigRef('source=app,target=/b')], configs).map(r => [r.ConfigID, r.File?.Name]), [
    ['id-app', '/a'],
    ['id-app', '/b'],
  ])
  t.throws(() => resolveConfigs([parseConfigRef('nope')], configs), { message: 'config not found: nope' })
  t.throws(() => resolveConfigs([parseConfigRef('source=app,target=/a'), parseConfigRef('source=app,target=/a')], configs), { message: 'duplicate config target for app not allowed' })
  const spec = createSpec({ config: [parseConfigRef('app')] }, 'busybox', [])
  t.same(updateSpec(spec, { configRm: ['app'] }).TaskTemplate.ContainerSpec.Configs, [], '--config-rm by name')
})

t.test('CPU and memory values', async t => {
  t.equal(parseNanoCPUs('0.5'), 5e8)
  t.equal(parseNanoCPUs('2'), 2e9)
  t.equal(parseNanoCPUs('0.000000001'), 1)
  t.throws(() => parseNanoCPUs('0.0000000001'), { message: 'value is too precise' })
  t.throws(() => parseNanoCPUs('x'))
  t.equal(parseMemBytes('512m'), 512 * 1024 ** 2)
  t.equal(parseMemBytes('1g'), 1024 ** 3)
  t.equal(parseMemBytes('100MiB'), 100 * 1024 ** 2)
  t.equal(parseMemBytes('1024'), 1024)
  t.throws(() => parseMemBytes('12x'), { message: "invalid size: '12x'" })
})

t.test('a bare env name takes its value from the caller', async t => {
  t.equal(envEntry('A=1', {}), 'A=1')
  t.equal(envEntry('HOME', { HOME: '/root' }), 'HOME=/root')
  t.equal(envEntry('UNSET', {}), 'UNSET')
})

t.test('--args splits like a shell', async t => {
  t.same(shellWords(`sh -c 'echo hi there' "a \\"b\\"" c\\ d`), ['sh', '-c', 'echo hi there', 'a "b"', 'c d'])
  t.same(shellWords("''"), [''])
  t.throws(() => shellWords("'open"))
})

t.test('create flags build docker\'s ServiceSpec', async t => {
  const spec = createSpec(
    {
      name: 'web',
      replicas: 3,
      env: ['A=1'],
      workdir: '/app',
      constraint: ['node.role==worker'],
      placementPref: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }],
      publish: parsePublish('8080:80'),
      network: ['net1'],
      label: ['tier=front', 'bare'],
      containerLabel: ['c=1'],
      restartCondition: 'on-failure',
      updateParallelism: 2,
      updateDelay: 10e9,
      rollbackOrder: 'start-first',
      stopGracePeriod: 20e9,
      limitCpu: 5e8,
      reserveMemory: 1024,
      hostname: 'h',
      user: 'nobody',
      replicasMaxPerNode: 1,
    },
    'nginx:alpine',
    ['sh', '-c', 'echo hi'],
    {},
  )
  t.same(spec, {
    Name: 'web',
    Labels: { tier: 'front', bare: '' },
    TaskTemplate: {
      ContainerSpec: { Image: 'nginx:alpine', Labels: { c: '1' }, Args: ['sh', '-c', 'echo hi'], Env: ['A=1'], Dir: '/app', Hostname: 'h', User: 'nobody', StopGracePeriod: 20e9 },
      Resources: { Limits: { NanoCPUs: 5e8 }, Reservations: { MemoryBytes: 1024 } },
      Placement: { Constraints: ['node.role==worker'], Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }], MaxReplicas: 1 },
      Networks: [{ Target: 'net1' }],
      ForceUpdate: 0,
      RestartPolicy: { Condition: 'on-failure', Delay: 5e9, MaxAttempts: 0, Window: 0 },
    },
    Mode: { Replicated: { Replicas: 3 } },
    EndpointSpec: { Mode: 'vip', Ports: [{ Protocol: 'tcp', PublishMode: 'ingress', TargetPort: 80, PublishedPort: 8080 }] },
    UpdateConfig: { Parallelism: 2, Delay: 10e9, FailureAction: 'pause', Monitor: 5e9, MaxFailureRatio: 0, Order: 'stop-first' },
    RollbackConfig: { Parallelism: 1, Delay: 0, FailureAction: 'pause', Monitor: 5e9, MaxFailureRatio: 0, Order: 'start-first' },
  })
  const bare = createSpec({}, 'busybox', [], {})
  t.notOk(bare.UpdateConfig, 'no update config unless an update flag is given')
  t.notOk(bare.TaskTemplate.RestartPolicy)
  t.notOk(bare.TaskTemplate.ContainerSpec.Args)
  t.same(bare.Mode, { Replicated: { Replicas: 1 } })
  t.same(createSpec({ mode: 'global' }, 'busybox', [], {}).Mode, { Global: {} })
  t.throws(() => createSpec({ mode: 'global', replicas: 2 }, 'b', []), { message: 'replicas can only be used with replicated or replicated-job mode' })
  t.throws(() => createSpec({ mode: 'global', replicasMaxPerNode: 2 }, 'b', []), { message: 'replicas-max-per-node can only be used with replicated or replicated-job mode' })
  t.throws(() => createSpec({ mode: 'job' }, 'b', []), { message: 'unknown mode: job, only replicated and global supported' })
})

t.test('job modes as docker ToServiceMode sets them', async t => {
  t.same(createSpec({ mode: 'replicated-job' }, 'b', [], {}).Mode, { ReplicatedJob: {} }, "the daemon's defaults")
  t.same(createSpec({ mode: 'replicated-job', replicas: 5 }, 'b', [], {}).Mode, { ReplicatedJob: { MaxConcurrent: 5, TotalCompletions: 5 } }, 'max concurrent defaults to --replicas')
  t.same(createSpec({ mode: 'replicated-job', replicas: 5, maxConcurrent: 2 }, 'b', [], {}).Mode, { ReplicatedJob: { MaxConcurrent: 2, TotalCompletions: 5 } })
  t.same(createSpec({ mode: 'global-job' }, 'b', [], {}).Mode, { GlobalJob: {} })
  t.throws(() => createSpec({ mode: 'global-job', replicas: 2 }, 'b', []), { message: 'replicas can only be used with replicated or replicated-job mode' })
  t.throws(() => createSpec({ mode: 'replicated', maxConcurrent: 2 }, 'b', []), { message: 'max-concurrent can only be used with replicated-job mode' })
  t.throws(() => createSpec({ mode: 'global-job', maxConcurrent: 2 }, 'b', []), { message: 'max-concurrent can only be used with replicated-job mode' })
  t.throws(() => createSpec({ mode: 'replicated-job', updateParallelism: 2 }, 'b', []), { message: 'update and rollback configuration is not supported for jobs' })
  t.throws(() => createSpec({ mode: 'global-job', rollbackDelay: 1 }, 'b', []), { message: 'update and rollback configuration is not supported for jobs' })
  const job = createSpec({ mode: 'replicated-job', replicas: 2 }, 'b', [], {})
  t.same(updateSpec(job, { replicas: 4, maxConcurrent: 3 }).Mode, { ReplicatedJob: { MaxConcurrent: 3, TotalCompletions: 4 } }, 'update --replicas sets the completions')
  t.throws(() => updateSpec(createSpec({}, 'b', [], {}), { maxConcurrent: 3 }), { message: 'max-concurrent can only be used with replicated-job mode' })
})

t.test('update flags change the current spec as docker does', async t => {
  const current = createSpec(
    { name: 'web', env: ['A=1', 'B=2'], constraint: ['node.role==worker'], publish: [...parsePublish('8080:80'), ...parsePublish('9090:90')], secret: [{ ...parseSecretRef('db'), SecretID: 'x' }] },
    'nginx:1',
    [],
    {},
  )
  current.UpdateConfig = { Parallelism: 4, Delay: 0, FailureAction: 'continue', Monitor: 5e9, MaxFailureRatio: 0, Order: 'stop-first' }
  const next = updateSpec(
    current,
    {
      image: 'nginx:2',
      replicas: 5,
      envAdd: ['B=3', 'C=4'],
      envRm: ['A'],
      args: ['sleep', '1'],
      force: true,
      constraintAdd: ['node.labels.a==b'],
      constraintRm: ['node.role==worker'],
      publishAdd: parsePublish('7070:70'),
      publishRm: parsePublish('90'),
      secretRm: ['db'],
      labelAdd: ['x=y'],
      updateDelay: 1e9,
      restartMaxAttempts: 3,
    },
    {},
  )
  const c = next.TaskTemplate.ContainerSpec
  t.equal(c.Image, 'nginx:2')
  t.same(next.Mode, { Replicated: { Replicas: 5 } })
  t.same(c.Env, ['B=3', 'C=4'])
  t.same(c.Args, ['sleep', '1'])
  t.equal(next.TaskTemplate.ForceUpdate, 1)
  t.same(next.TaskTemplate.Placement?.Constraints, ['node.labels.a==b'])
  t.same(
    next.EndpointSpec?.Ports?.map(p => `${p.PublishedPort}:${p.TargetPort}`),
    ['7070:70', '8080:80'],
  )
  t.same(c.Secrets, [])
  t.same(next.Labels, { x: 'y' })
  t.same(next.UpdateConfig, { Parallelism: 4, Delay: 1e9, FailureAction: 'continue', Monitor: 5e9, MaxFailureRatio: 0, Order: 'stop-first' }, 'keeps the fields not given')
  t.same(next.TaskTemplate.RestartPolicy, { Condition: 'any', Delay: 5e9, MaxAttempts: 3, Window: 0 })
  t.equal(current.TaskTemplate.ContainerSpec.Image, 'nginx:1', 'the current spec is left alone')
  t.throws(() => updateSpec(createSpec({ mode: 'global' }, 'b', []), { replicas: 2 }), { message: 'replicas can only be used with replicated mode' })
  t.ok(hasSpecFlags({ image: 'x', rollback: true }))
  t.notOk(hasSpecFlags({ rollback: true, detach: true, quiet: true }))
})

t.test('publish-rm matches target, protocol and mode; publish-add skips duplicates', async t => {
  const ports = [...parsePublish('8080:80'), ...parsePublish('53:53/udp'), ...parsePublish('published=8081,target=80,mode=host')]
  t.same(
    updatePorts(ports, [], parsePublish('80')).map(p => `${p.PublishedPort}:${p.TargetPort}/${p.Protocol}/${p.PublishMode}`),
    ['53:53/udp/ingress', '8081:80/tcp/host'],
  )
  t.equal(updatePorts(ports, parsePublish('8080:80')).length, 3)
})
