import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import t from 'tap'
import { SwarmError, type ErrorKind } from '../types/errors.js'
import { swarmError } from '../test-helpers.test-helper.js'
import { applyDefaults, checkPortConflicts, effective, randomName, type SpecContext, validateServiceSpec } from './service-spec.js'
import type { ServiceSpec } from '../types/service.js'

const RPC = 'rpc error: code = InvalidArgument desc = '
const JSON_ERR = 'invalid JSON: json: cannot unmarshal '

const SECRETS = [
  { ID: 'sec1id', Spec: { Name: 'db' } },
  { ID: 'sec2id', Spec: { Name: 'api' } },
]
const CONFIGS = [{ ID: 'cfg1id', Spec: { Name: 'nginx.conf' } }]
const NETWORKS = [{ ID: 'net1id', Name: 'backend' }]
const ctx: SpecContext = {
  secretByRef: ref => SECRETS.find(s => s.ID === ref) ?? SECRETS.find(s => s.Spec.Name === ref),
  configByRef: ref => CONFIGS.find(s => s.ID === ref) ?? CONFIGS.find(s => s.Spec.Name === ref),
  networkByRef: ref => NETWORKS.find(n => n.ID === ref || n.Name === ref),
}
const validate = (body: unknown) => validateServiceSpec(body, ctx)

type Json = Record<string, unknown>
/** A valid create body with the given parts replaced. */
function body(parts: { top?: Json; task?: Json; container?: Json } = {}): Json {
  return {
    Name: 'web',
    ...parts.top,
    TaskTemplate: { ContainerSpec: { Image: 'nginx:alpine', ...parts.container }, ...parts.task },
  }
}
const ports = (...p: Json[]) => body({ top: { EndpointSpec: { Ports: p } } })
const secrets = (...s: Json[]) => body({ container: { Secrets: s } })

const cases: [string, unknown, ErrorKind, string][] = [
  // dockerd's JSON decoding
  ['a number body', 5, 'invalid_argument', `${JSON_ERR}number into Go value of type swarm.serviceWithLegacy`],
  ['an array body', [], 'invalid_argument', `${JSON_ERR}array into Go value of type swarm.serviceWithLegacy`],
  ['a number name', body({ top: { Name: 5 } }), 'invalid_argument', `${JSON_ERR}number into Go struct field serviceWithLegacy.Name of type string`],
  ['a non-string label', body({ top: { Labels: { a: 1 } } }), 'invalid_argument', `${JSON_ERR}number into Go struct field serviceWithLegacy.Labels of type string`],
  ['negative replicas', body({ top: { Mode: { Replicated: { Replicas: -1 } } } }), 'invalid_argument', `${JSON_ERR}number -1 into Go struct field ReplicatedService.Mode.Replicated.Replicas of type uint64`],
  ['fractional replicas', body({ top: { Mode: { Replicated: { Replicas: 1.5 } } } }), 'invalid_argument', `${JSON_ERR}number 1.5 into Go struct field ReplicatedService.Mode.Replicated.Replicas of type uint64`],
  ['string replicas', body({ top: { Mode: { Replicated: { Replicas: '3' } } } }), 'invalid_argument', `${JSON_ERR}string into Go struct field ReplicatedService.Mode.Replicated.Replicas of type uint64`],
  ['a bool global mode', body({ top: { Mode: { Global: true } } }), 'invalid_argument', `${JSON_ERR}bool into Go struct field ServiceMode.Mode.Global of type swarm.GlobalService`],
  ['a string container spec', { TaskTemplate: { ContainerSpec: 'nginx' } }, 'invalid_argument', `${JSON_ERR}string into Go struct field TaskSpec.TaskTemplate.ContainerSpec of type swarm.ContainerSpec`],
  ['a string env', body({ container: { Env: 'A=1' } }), 'invalid_argument', `${JSON_ERR}string into Go struct field ContainerSpec.TaskTemplate.ContainerSpec.Env of type []string`],
  ['a number in the command', body({ container: { Command: ['sh', 1] } }), 'invalid_argument', `${JSON_ERR}number into Go struct field ContainerSpec.TaskTemplate.ContainerSpec.Command of type string`],
  ['a string restart delay', body({ task: { RestartPolicy: { Delay: '5s' } } }), 'invalid_argument', `${JSON_ERR}string into Go struct field RestartPolicy.TaskTemplate.RestartPolicy.Delay of type time.Duration`],
  ['negative max attempts', body({ task: { RestartPolicy: { MaxAttempts: -1 } } }), 'invalid_argument', `${JSON_ERR}number -1 into Go struct field RestartPolicy.TaskTemplate.RestartPolicy.MaxAttempts of type uint64`],
  ['negative parallelism', body({ top: { UpdateConfig: { Parallelism: -1 } } }), 'invalid_argument', `${JSON_ERR}number -1 into Go struct field UpdateConfig.UpdateConfig.Parallelism of type uint64`],
  ['a string failure ratio', body({ top: { RollbackConfig: { MaxFailureRatio: '0.5' } } }), 'invalid_argument', `${JSON_ERR}string into Go struct field UpdateConfig.RollbackConfig.MaxFailureRatio of type float32`],
  ['a string target port', ports({ TargetPort: '80' }), 'invalid_argument', `${JSON_ERR}string into Go struct field PortConfig.EndpointSpec.Ports.TargetPort of type uint32`],
  ['a negative published port', ports({ TargetPort: 80, PublishedPort: -1 }), 'invalid_argument', `${JSON_ERR}number -1 into Go struct field PortConfig.EndpointSpec.Ports.PublishedPort of type uint32`],
  ['an object for ports', body({ top: { EndpointSpec: { Ports: {} } } }), 'invalid_argument', `${JSON_ERR}object into Go struct field EndpointSpec.EndpointSpec.Ports of type []swarm.PortConfig`],
  ['a string file mode', secrets({ SecretName: 'db', File: { Name: 'db', Mode: '0444' } }), 'invalid_argument', `${JSON_ERR}string into Go struct field SecretReferenceFileTarget.TaskTemplate.ContainerSpec.Secrets.File.Mode of type fs.FileMode`],
  ['a negative CPU limit type', body({ task: { Resources: { Limits: { NanoCPUs: 0.5 } } } }), 'invalid_argument', `${JSON_ERR}number 0.5 into Go struct field Limit.TaskTemplate.Resources.Limits.NanoCPUs of type int64`],

  // dockerd's conversion for swarmkit
  ['no body', undefined, 'invalid_argument', 'mismatched Runtime and *Spec fields'],
  ['no container spec', { Name: 'web', TaskTemplate: {} }, 'invalid_argument', 'mismatched Runtime and *Spec fields'],
  ['the plugin runtime', body({ task: { Runtime: 'plugin' } }), 'invalid_argument', 'mismatched Runtime and *Spec fields'],
  ['an unknown runtime', body({ task: { Runtime: 'attachment' } }), 'invalid_argument', 'unsupported runtime'],
  ['an unknown restart condition', body({ task: { RestartPolicy: { Condition: 'always' } } }), 'invalid_argument', 'invalid RestartCondition: "always"'],
  ['an unknown failure action', body({ top: { UpdateConfig: { FailureAction: 'stop' } } }), 'invalid_argument', 'unrecognized update failure action stop'],
  ['an unknown rollback failure action', body({ top: { RollbackConfig: { FailureAction: 'stop' } } }), 'invalid_argument', 'unrecognized update failure action stop'],
  ['an unknown update order', body({ top: { UpdateConfig: { Order: 'random' } } }), 'invalid_argument', 'unrecognized update order random'],
  ['an unknown resolution mode', body({ top: { EndpointSpec: { Mode: 'VIP' } } }), 'invalid_argument', 'invalid resolution mode: "VIP"'],
  ['an unknown protocol', ports({ TargetPort: 80, Protocol: 'icmp' }), 'invalid_argument', 'invalid protocol: "icmp"'],
  ['an unknown publish mode', ports({ TargetPort: 80, PublishMode: 'local' }), 'invalid_argument', 'invalid publish mode: "local"'],
  ['target port 0', ports({ PublishedPort: 8080 }), 'invalid_argument', `${RPC}EndpointSpec: invalid target port 0: must be between 1 and 65535`],
  ['target port 65536', ports({ TargetPort: 65536 }), 'invalid_argument', `${RPC}EndpointSpec: invalid target port 65536: must be between 1 and 65535`],
  ['published port 65536', ports({ TargetPort: 80, PublishedPort: 65536 }), 'invalid_argument', `${RPC}EndpointSpec: invalid published port 65536: must be between 0 and 65535`],
  ['both modes', body({ top: { Mode: { Replicated: { Replicas: 1 }, Global: {} } } }), 'invalid_argument', 'must specify only one service mode'],
  ['a job with an update config', body({ top: { Mode: { ReplicatedJob: {} }, UpdateConfig: {} } }), 'invalid_argument', `${RPC}Jobs may not have an update config`],
  ['a job past the task limit', body({ top: { Mode: { ReplicatedJob: { TotalCompletions: 100_001 } } } }), 'invalid_argument', `${RPC}TotalCompletions: 100001 is more than swarmd's limit of 100000 tasks per service`],
  ['an unknown network', body({ task: { Networks: [{ Target: 'nope' }] } }), 'not_found', 'network nope not found'],
  ['an unknown mount type', body({ container: { Mounts: [{ Type: 'nfs', Target: '/x' }] } }), 'invalid_argument', 'invalid MountType: "nfs"'],
  ['an unknown propagation', body({ container: { Mounts: [{ Type: 'bind', Source: '/a', Target: '/x', BindOptions: { Propagation: 'sideways' } }] } }), 'invalid_argument', 'invalid MountPropagation: "sideways"'],
  ['a mount of the wrong JSON type', body({ container: { Mounts: [{ ReadOnly: 'yes' }] } }), 'invalid_argument', 'invalid JSON: json: cannot unmarshal string into Go struct field Mount.TaskTemplate.ContainerSpec.Mounts.ReadOnly of type bool'],
  ['a healthcheck retries of the wrong type', body({ container: { Healthcheck: { Retries: 'x' } } }), 'invalid_argument', 'invalid JSON: json: cannot unmarshal string into Go struct field HealthConfig.TaskTemplate.ContainerSpec.Healthcheck.Retries of type int'],
  ['privileges', body({ container: { Privileges: { NoNewPrivileges: true } } }), 'invalid_argument', `${RPC}ContainerSpec.Privileges is not supported by swarmd (credential specs, SELinux, seccomp, AppArmor, no-new-privileges)`],
  ['generic resources', body({ task: { Resources: { Reservations: { GenericResources: [{ DiscreteResourceSpec: { Kind: 'gpu', Value: 1 } }] } } } }), 'invalid_argument', `${RPC}Resources.Reservations.GenericResources is not supported by swarmd: no node advertises generic resources`],
  ['platforms', body({ task: { Placement: { Platforms: [{ OS: 'linux', Architecture: 'arm64' }] } } }), 'invalid_argument', `${RPC}Placement.Platforms is not supported by swarmd: image platforms are not resolved`],

  // swarmkit's controlapi
  ['a doubled mount point', body({ container: { Mounts: [{ Type: 'tmpfs', Target: '/x' }, { Type: 'bind', Source: '/a', Target: '/x' }] } }), 'invalid_argument', `${RPC}ContainerSpec: duplicate mount point: /x`],
  ['a healthcheck interval under 1ms', body({ container: { Healthcheck: { Test: ['CMD', 'true'], Interval: 999_999 } } }), 'invalid_argument', `${RPC}ContainerSpec: Interval in HealthConfig cannot be less than 1ms`],
  ['a negative healthcheck timeout', body({ container: { Healthcheck: { Timeout: -1 } } }), 'invalid_argument', `${RPC}ContainerSpec: Timeout in HealthConfig cannot be less than 1ms`],
  ['a start interval under 1ms', body({ container: { Healthcheck: { StartInterval: 5 } } }), 'invalid_argument', `${RPC}ContainerSpec: StartInterval in HealthConfig cannot be less than 1ms`],
  ['negative retries', body({ container: { Healthcheck: { Retries: -1 } } }), 'invalid_argument', `${RPC}ContainerSpec: Retries in HealthConfig cannot be negative`],
  ['a name with a space', body({ top: { Name: 'web server' } }), 'invalid_argument', `${RPC}name must be valid as a DNS name component`],
  ['a name with a dot', body({ top: { Name: 'web.1' } }), 'invalid_argument', `${RPC}name must be valid as a DNS name component`],
  ['a name starting with a dash', body({ top: { Name: '-web' } }), 'invalid_argument', `${RPC}name must be valid as a DNS name component`],
  ['a name ending with an underscore', body({ top: { Name: 'web_' } }), 'invalid_argument', `${RPC}name must be valid as a DNS name component`],
  ['a 64-char name', body({ top: { Name: 'a'.repeat(64) } }), 'invalid_argument', `${RPC}name must be 63 characters or fewer`],
  ['a tiny CPU limit', body({ task: { Resources: { Limits: { NanoCPUs: 1000 } } } }), 'invalid_argument', `${RPC}invalid cpu value 1e-06: Must be at least 0.001`],
  ['a tiny CPU reservation', body({ task: { Resources: { Reservations: { NanoCPUs: 500000 } } } }), 'invalid_argument', `${RPC}invalid cpu value 0.0005: Must be at least 0.001`],
  ['a tiny memory limit', body({ task: { Resources: { Limits: { MemoryBytes: 1024 } } } }), 'invalid_argument', `${RPC}invalid memory value 1024: Must be at least 4MiB`],
  ['a negative restart delay', body({ task: { RestartPolicy: { Delay: -1 } } }), 'invalid_argument', `${RPC}TaskSpec: restart-delay cannot be negative`],
  ['a negative restart window', body({ task: { RestartPolicy: { Window: -1 } } }), 'invalid_argument', `${RPC}TaskSpec: restart-window cannot be negative`],
  ['a secret reference without ID or name', secrets({}), 'invalid_argument', `${RPC}malformed secret reference`],
  ['an empty target file name', secrets({ SecretName: 'db', File: { Name: '' } }), 'invalid_argument', `${RPC}malformed file secret reference, invalid target file name provided`],
  ['two secrets on one target', secrets({ SecretName: 'db' }, { SecretName: 'api', File: { Name: 'db' } }), 'invalid_argument', `${RPC}secret references 'db' and 'api' have a conflicting target: 'db'`],
  ['no image', body({ container: { Image: '' } }), 'invalid_argument', `${RPC}ContainerSpec: image reference must be provided`],
  ['an upper-case image', body({ container: { Image: 'Nginx' } }), 'invalid_argument', `${RPC}ContainerSpec: "Nginx" is not a valid repository/tag`],
  ['an empty tag', body({ container: { Image: 'nginx:' } }), 'invalid_argument', `${RPC}ContainerSpec: "nginx:" is not a valid repository/tag`],
  ['a short digest', body({ container: { Image: 'nginx@sha256:abc' } }), 'invalid_argument', `${RPC}ContainerSpec: "nginx@sha256:abc" is not a valid repository/tag`],
  ['a 64-hex image', body({ container: { Image: 'a'.repeat(64) } }), 'invalid_argument', `${RPC}ContainerSpec: "${'a'.repeat(64)}" is not a valid repository/tag`],
  ['a negative update delay', body({ top: { UpdateConfig: { Delay: -1 } } }), 'invalid_argument', `${RPC}TaskSpec: update-delay cannot be negative`],
  ['a negative update monitor', body({ top: { UpdateConfig: { Monitor: -1 } } }), 'invalid_argument', `${RPC}TaskSpec: update-monitor cannot be negative`],
  ['an update failure ratio above 1', body({ top: { UpdateConfig: { MaxFailureRatio: 1.5 } } }), 'invalid_argument', `${RPC}TaskSpec: update-maxfailureratio cannot be less than 0 or bigger than 1`],
  ['a negative update failure ratio', body({ top: { UpdateConfig: { MaxFailureRatio: -0.1 } } }), 'invalid_argument', `${RPC}TaskSpec: update-maxfailureratio cannot be less than 0 or bigger than 1`],
  ['a negative rollback delay', body({ top: { RollbackConfig: { Delay: -1 } } }), 'invalid_argument', `${RPC}TaskSpec: rollback-delay cannot be negative`],
  ['a negative rollback monitor', body({ top: { RollbackConfig: { Monitor: -5 } } }), 'invalid_argument', `${RPC}TaskSpec: rollback-monitor cannot be negative`],
  ['a rollback failure ratio above 1', body({ top: { RollbackConfig: { MaxFailureRatio: 2 } } }), 'invalid_argument', `${RPC}TaskSpec: rollback-maxfailureratio cannot be less than 0 or bigger than 1`],
  ['an ingress port with dnsrr', body({ top: { EndpointSpec: { Mode: 'dnsrr', Ports: [{ TargetPort: 80 }] } } }), 'invalid_argument', `${RPC}EndpointSpec: port published with ingress mode can't be used with dnsrr mode`],
  ['a duplicate published port', ports({ TargetPort: 80, PublishedPort: 8080 }, { TargetPort: 81, PublishedPort: 8080, Protocol: 'tcp' }), 'invalid_argument', `${RPC}EndpointSpec: duplicate published ports provided`],
  ['a missing secret', secrets({ SecretName: 'nope' }), 'invalid_argument', `${RPC}secret not found: nope`],
  ['two missing secrets', secrets({ SecretName: 'nope' }, { SecretName: 'db' }, { SecretID: 'gone' }), 'invalid_argument', `${RPC}secrets not found: nope, gone`],
  ['a secret whose ID and name disagree', secrets({ SecretID: 'sec1id', SecretName: 'api' }), 'invalid_argument', `${RPC}secret not found: api`],
]

t.test('rejects bad specs with Docker\'s texts', async t => {
  for (const [what, b, kind, message] of cases) t.throws(() => validate(b), swarmError(kind, message), what)
})

t.test('placement constraints go through the constraint parser', async t => {
  t.throws(() => validate(body({ task: { Placement: { Constraints: ['node.role=manager'] } } })), swarmError('invalid_argument', /node\.role=manager/))
  t.ok(validate(body({ task: { Placement: { Constraints: ['node.role==manager'] } } })))
})

t.test('accepts what Docker accepts', async t => {
  const ok: [string, unknown][] = [
    ['zero replicas', body({ top: { Mode: { Replicated: { Replicas: 0 } } } })],
    ['a 63-char name', body({ top: { Name: 'a'.repeat(63) } })],
    ['dashes and underscores inside a name', body({ top: { Name: 'my-web__1' } })],
    ['a registry image with a tag and digest', body({ container: { Image: `registry.example.com:5000/team/app:v1.2@sha256:${'a'.repeat(64)}` } })],
    ['a host port with dnsrr', body({ top: { EndpointSpec: { Mode: 'dnsrr', Ports: [{ TargetPort: 80, PublishedPort: 80, PublishMode: 'host' }] } } })],
    ['one published port on tcp and udp', ports({ TargetPort: 53, PublishedPort: 53 }, { TargetPort: 53, PublishedPort: 53, Protocol: 'udp' })],
    ['several unpublished ports', ports({ TargetPort: 80 }, { TargetPort: 81 })],
    ['failure ratios 0 and 1', body({ top: { UpdateConfig: { MaxFailureRatio: 0 }, RollbackConfig: { MaxFailureRatio: 1 } } })],
    ['two secrets on distinct targets', secrets({ SecretName: 'db' }, { SecretName: 'api' })],
  ]
  for (const [what, b] of ok) t.ok(validate(b), what)
})

t.test('stores the spec as dockerd would', async t => {
  t.same(validate(body()), {
    Name: 'web',
    Labels: {},
    TaskTemplate: { ContainerSpec: { Image: 'nginx:alpine' }, ForceUpdate: 0, Runtime: 'container' },
    Mode: { Replicated: { Replicas: 1 } },
  })
  const full = validate({
    name: 'api',
    labels: { team: 'a' },
    unknownField: 1,
    taskTemplate: {
      containerSpec: { image: 'redis', env: ['A=1'], init: false, stopGracePeriod: 2e9 },
      restartPolicy: {},
      placement: { Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }, {}], MaxReplicas: 2 },
      networks: [{ Target: 'backend', Aliases: ['db'] }, { Target: 'net1id' }],
    },
    Mode: { Global: {} },
    UpdateConfig: {},
    RollbackConfig: { Parallelism: 2, Delay: 1e9, FailureAction: 'continue', Monitor: 0, MaxFailureRatio: 0.5, Order: 'start-first' },
    EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 8080, Protocol: 'UDP' }, { TargetPort: 81, Name: 'metrics', PublishMode: 'host' }] },
  })
  t.same(full, {
    Name: 'api',
    Labels: { team: 'a' },
    TaskTemplate: {
      ContainerSpec: { Image: 'redis', Env: ['A=1'], Init: false, StopGracePeriod: 2e9 },
      RestartPolicy: { Condition: 'any', MaxAttempts: 0 },
      Placement: { Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }], MaxReplicas: 2 },
      Networks: [{ Target: 'net1id', Aliases: ['db'] }, { Target: 'net1id' }],
      ForceUpdate: 0,
      Runtime: 'container',
    },
    Mode: { Global: {} },
    UpdateConfig: { Parallelism: 0, FailureAction: 'pause', MaxFailureRatio: 0, Order: 'stop-first' },
    RollbackConfig: { Parallelism: 2, Delay: 1e9, FailureAction: 'continue', MaxFailureRatio: 0.5, Order: 'start-first' },
    EndpointSpec: {
      Mode: 'vip',
      Ports: [
        { Protocol: 'udp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' },
        { Name: 'metrics', Protocol: 'tcp', TargetPort: 81, PublishMode: 'host' },
      ],
    },
  })
  t.notOk('unknownField' in full, 'unknown fields are dropped')
})

t.test('the fields the executors honour are stored, not dropped', async t => {
  const container = {
    Healthcheck: { Test: ['CMD-SHELL', 'true'], Interval: 2e9, Timeout: 1e9, StartPeriod: 0, Retries: 2 },
    Mounts: [{ Type: 'BIND', Source: '/srv', Target: '/data', ReadOnly: true, BindOptions: { Propagation: 'RSHARED' } }, { Target: '/plain', Source: '/p' }, { Type: 'tmpfs', Target: '/scratch', TmpfsOptions: { SizeBytes: 1 << 20, Mode: 0o700 } }],
    StopSignal: 'SIGINT',
    ReadOnly: true,
    TTY: true,
    OpenStdin: true,
    Groups: ['audio'],
    CapabilityAdd: ['CAP_NET_ADMIN'],
    CapabilityDrop: ['CAP_CHOWN'],
    DNSConfig: { Nameservers: ['10.0.0.2'], Search: ['example.org'], Options: ['ndots:2'] },
    Hosts: ['10.0.0.1 db'],
    Sysctls: { 'net.core.somaxconn': '1024' },
    Ulimits: [{ Name: 'nofile', Soft: 1024, Hard: 2048 }],
    OomScoreAdj: 100,
    Isolation: 'default',
  }
  const spec = validateServiceSpec(body({ container, task: { LogDriver: { Name: 'json-file', Options: { 'max-size': '1m' } }, Resources: { Limits: { Pids: 20 } } } }), ctx)
  const c = spec.TaskTemplate.ContainerSpec
  t.same(c.Mounts, [
    { Type: 'bind', Source: '/srv', Target: '/data', ReadOnly: true, BindOptions: { Propagation: 'rshared' } },
    { Type: 'bind', Target: '/plain', Source: '/p' },
    { Type: 'tmpfs', Target: '/scratch', TmpfsOptions: { SizeBytes: 1 << 20, Mode: 0o700 } },
  ], 'types and propagations as dockerd stores them, an empty type is bind')
  const { Mounts: _m, ...others } = container
  t.match(c, others)
  t.same(spec.TaskTemplate.LogDriver, { Name: 'json-file', Options: { 'max-size': '1m' } })
  t.same(spec.TaskTemplate.Resources, { Limits: { Pids: 20 } })
  t.same(validateServiceSpec(body({ container: { Privileges: { CredentialSpec: {} }, DNSConfig: {} } }), ctx).TaskTemplate.ContainerSpec.DNSConfig, {}, 'empty privileges and DNS config, as the docker CLI sends them, pass')
})

t.test("jobs get dockerd's defaults: one at a time, as many completions as run at once", async t => {
  const mode = (m: object) => validateServiceSpec(body({ top: { Mode: m } }), ctx).Mode
  t.same(mode({ ReplicatedJob: {} }), { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } })
  t.same(mode({ ReplicatedJob: { MaxConcurrent: 3 } }), { ReplicatedJob: { MaxConcurrent: 3, TotalCompletions: 3 } })
  t.same(mode({ ReplicatedJob: { TotalCompletions: 5 } }), { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 5 } })
  t.same(mode({ GlobalJob: {} }), { GlobalJob: {} })
})

t.test('an unnamed service gets a generated name', async t => {
  const { Name } = validate({ TaskTemplate: { ContainerSpec: { Image: 'nginx' } } })
  t.match(Name, /^[a-z]+_[a-z]+$/)
  const names = new Set(Array.from({ length: 50 }, randomName))
  t.ok(names.size > 10, 'names vary')
})

t.test('secret references get both ID and name and a default file target', async t => {
  const spec = validate(secrets({ SecretName: 'db' }, { SecretID: 'sec2id', File: { Name: 'key', Mode: 0o400 } }, { SecretName: 'db', SecretID: 'sec1id', File: { Name: 'db2', UID: '1000', GID: '', Mode: 0 } }))
  t.same(spec.TaskTemplate.ContainerSpec.Secrets, [
    { File: { Name: 'db', UID: '0', GID: '0', Mode: 0o444 }, SecretID: 'sec1id', SecretName: 'db' },
    { File: { Name: 'key', UID: '0', GID: '0', Mode: 0o400 }, SecretID: 'sec2id', SecretName: 'api' },
    { File: { Name: 'db2', UID: '1000', GID: '0', Mode: 0 }, SecretID: 'sec1id', SecretName: 'db' },
  ])
})

const DEFAULT_UPDATE = { Parallelism: 1, FailureAction: 'pause', Monitor: 5e9, MaxFailureRatio: 0, Order: 'stop-first' }

t.test('applyDefaults fills what the docker CLI sends and swarmkit interpolates', async t => {
  const spec = validate(body())
  t.same(applyDefaults(spec), {
    Name: 'web',
    Labels: {},
    TaskTemplate: {
      ContainerSpec: { Image: 'nginx:alpine', StopGracePeriod: 10e9 },
      Resources: {},
      RestartPolicy: { Condition: 'any', Delay: 5e9, MaxAttempts: 0 },
      Placement: {},
      ForceUpdate: 0,
      Runtime: 'container',
    },
    Mode: { Replicated: { Replicas: 1 } },
    UpdateConfig: DEFAULT_UPDATE,
    RollbackConfig: DEFAULT_UPDATE,
    EndpointSpec: { Mode: 'vip' },
  })
  t.same(validate(body()), spec, 'the stored spec is left alone')
  const custom = applyDefaults(validate(body({ task: { RestartPolicy: { Condition: 'none', Window: 1 } }, top: { UpdateConfig: { Parallelism: 3 } } })))
  t.same(custom.TaskTemplate.RestartPolicy, { Condition: 'none', Delay: 5e9, MaxAttempts: 0, Window: 1 })
  t.same(custom.UpdateConfig, { ...DEFAULT_UPDATE, Parallelism: 3, FailureAction: 'pause', Monitor: 5e9 })
  t.same(validate(applyDefaults(spec)), applyDefaults(spec), 'a defaulted spec is valid as it is')
})

t.test('effective settings for the orchestrator', async t => {
  t.same(effective(validate(body())), {
    replicas: 1,
    global: false,
    restart: { Condition: 'any', Delay: 5e9, MaxAttempts: 0, Window: 0 },
    update: { ...DEFAULT_UPDATE, Delay: 0 },
    rollback: { ...DEFAULT_UPDATE, Delay: 0 },
    stopGracePeriod: 10e9,
    endpointMode: 'vip',
    ports: [],
  })
  const e = effective(
    validate({
      ...body({ task: { RestartPolicy: { Condition: 'on-failure', Delay: 0, MaxAttempts: 3, Window: 60e9 } } }),
      Mode: { Global: {} },
      UpdateConfig: { Parallelism: 0, Delay: 2e9, Monitor: 0, FailureAction: 'rollback' },
      EndpointSpec: { Mode: 'dnsrr', Ports: [{ TargetPort: 80, PublishMode: 'host' }] },
    }),
  )
  t.same(e.restart, { Condition: 'on-failure', Delay: 0, MaxAttempts: 3, Window: 60e9 }, 'an explicit zero delay stays zero')
  t.same(e.update, { Parallelism: 0, Delay: 2e9, FailureAction: 'rollback', Monitor: 5e9, MaxFailureRatio: 0, Order: 'stop-first' }, 'a zero monitor means the default')
  t.equal(e.global, true)
  t.equal(e.replicas, undefined)
  t.same(e.ports, [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 0, PublishMode: 'host' }])
  t.equal(e.endpointMode, 'dnsrr')
})

t.test('port conflicts with other services', async t => {
  const svc = (id: string, name: string, p: Json[], allocated?: Json[]) => ({
    ID: id,
    Spec: validate({ ...ports(...p), Name: name }),
    ...(allocated ? { Endpoint: { Ports: allocated as never } } : {}),
  })
  const mine = (...p: Json[]) => validate(ports(...p))
  const others = [svc('id1', 'one', [{ TargetPort: 80, PublishedPort: 8080 }]), svc('id2', 'two', [{ TargetPort: 80, PublishedPort: 9090, PublishMode: 'host' }])]
  const ingressTaken = `${RPC}port '8080' is already in use by service 'one' (id1) as an ingress port`
  t.throws(() => checkPortConflicts(mine({ TargetPort: 81, PublishedPort: 8080 }), others), swarmError('invalid_argument', ingressTaken))
  t.throws(() => checkPortConflicts(mine({ TargetPort: 81, PublishedPort: 8080, PublishMode: 'host' }), others), swarmError('invalid_argument', ingressTaken), 'host mode clashes with ingress')
  t.throws(
    () => checkPortConflicts(mine({ TargetPort: 81, PublishedPort: 9090 }), others),
    swarmError('invalid_argument', `${RPC}port '9090' is already in use by service 'two' (id2) as a host-published port`),
  )
  t.doesNotThrow(() => checkPortConflicts(mine({ TargetPort: 81, PublishedPort: 9090, PublishMode: 'host' }), others), 'host ports only clash with ingress')
  t.doesNotThrow(() => checkPortConflicts(mine({ TargetPort: 81, PublishedPort: 8080, Protocol: 'udp' }), others), 'another protocol')
  t.doesNotThrow(() => checkPortConflicts(mine({ TargetPort: 81 }), others), 'unpublished ports never clash')
  t.doesNotThrow(() => checkPortConflicts(validate(body()), others), 'no ports')
  const dynamic = [svc('id3', 'three', [{ TargetPort: 80 }], [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 30000, PublishMode: 'ingress' }])]
  t.throws(
    () => checkPortConflicts(mine({ TargetPort: 80, PublishedPort: 30000 }), dynamic),
    swarmError('invalid_argument', `${RPC}port '30000' is already in use by service 'three' (id3) as an ingress port`),
    'allocated ports count',
  )
})

// Spec bodies: valid ones, or with `junk` also invalid values and any part replaced by arbitrary JSON.
const anyJson = fc.jsonValue({ maxDepth: 2 })
const partial = <T extends Record<string, fc.Arbitrary<unknown>>>(r: T, ...required: (keyof T & string)[]) => fc.record(r, { requiredKeys: required })
function specBody(junk: boolean): fc.Arbitrary<unknown> {
  const maybe = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<unknown> => (junk ? fc.oneof({ weight: 8, arbitrary: a }, { weight: 1, arbitrary: anyJson }) : a)
  const pick = (valid: unknown[], invalid: unknown[]) => maybe(fc.constantFrom(...valid, ...(junk ? invalid : [])))
  const int = (min: number, max: number) => maybe(fc.integer({ min: junk ? min - 1 : min, max }))
  const update = partial({
    Parallelism: int(0, 3),
    Delay: int(0, 5e9),
    FailureAction: pick(['pause', 'continue', 'rollback', ''], ['x']),
    Monitor: int(0, 5e9),
    MaxFailureRatio: maybe(fc.double({ min: junk ? -1 : 0, max: junk ? 2 : 1, noNaN: true })),
    Order: pick(['stop-first', 'start-first'], ['x']),
  })
  const port = partial(
    {
      Name: pick(['', 'web'], []),
      Protocol: pick(['tcp', 'udp', 'sctp', 'TCP'], ['x']),
      TargetPort: int(1, junk ? 70000 : 65535),
      PublishedPort: int(0, 5),
      PublishMode: pick(['ingress', 'host'], ['x']),
    },
    'TargetPort',
  )
  const secretRef = partial({
    SecretName: pick(['db', 'api'], ['nope', '']),
    SecretID: pick(['sec1id', 'sec2id'], ['gone', '']),
    File: maybe(partial({ Name: pick(['db', 'x', 'y'], ['']), UID: pick(['0', '', '1000'], []), Mode: maybe(fc.nat(0o777)) })),
  })
  return partial(
    {
      Name: pick(['web', '', 'a-b', 'A_1'], ['bad name', 'x'.repeat(64)]),
      Labels: maybe(fc.dictionary(fc.string(), fc.string())),
      TaskTemplate: maybe(
        partial(
          {
            ContainerSpec: maybe(
              partial(
                {
                  Image: pick(['nginx', 'reg:5000/a/b:1'], ['Bad', '', 'a@sha256:1']),
                  Env: maybe(fc.array(fc.string())),
                  Secrets: maybe(fc.array(secretRef, { maxLength: junk ? 3 : 1 })),
                  StopGracePeriod: int(0, 1e10),
                },
                'Image',
              ),
            ),
            Resources: maybe(partial({ Limits: maybe(partial({ NanoCPUs: maybe(fc.integer({ min: junk ? -1 : 1e6 })), MemoryBytes: maybe(fc.integer({ min: junk ? 0 : 4 << 20 })) })) })),
            RestartPolicy: maybe(
              partial({ Condition: pick(['any', 'none', 'on-failure'], ['x']), Delay: int(0, 1e10), MaxAttempts: int(0, 5), Window: int(0, 1e10) }),
            ),
            Placement: maybe(partial({ Constraints: maybe(fc.array(pick(['node.role==manager', 'node.labels.a!=b'], ['bogus']))) })),
            Networks: maybe(fc.array(partial({ Target: pick(['backend', 'net1id'], ['nope']), Aliases: maybe(fc.array(fc.string())) }, 'Target'))),
            Runtime: pick(['', 'container'], ['plugin']),
          },
          'ContainerSpec',
        ),
      ),
      Mode: maybe(fc.oneof(partial({ Replicated: maybe(partial({ Replicas: int(0, 5) })) }), fc.constant({ Global: {} }), ...(junk ? [partial({ Replicated: anyJson, Global: anyJson })] : []))),
      UpdateConfig: maybe(update),
      RollbackConfig: maybe(update),
      EndpointSpec: maybe(partial({ Mode: pick(['vip', 'dnsrr'], ['x']), Ports: maybe(fc.array(port, { maxLength: 3 })) })),
    },
    'TaskTemplate',
  )
}

/** Runs validation; returns the stored spec, or undefined for an invalid-argument or not-found SwarmError; rethrows anything else. */
function attempt(b: unknown): ServiceSpec | undefined {
  try {
    return validate(b)
  } catch (e) {
    if (e instanceof SwarmError && (e.kind === 'invalid_argument' || e.kind === 'not_found')) return undefined
    throw e
  }
}

t.test('arbitrary JSON never throws anything but a SwarmError', async t => {
  fc.assert(fc.property(anyJson, b => void attempt(b)))
  fc.assert(fc.property(specBody(true), b => void attempt(b)), { numRuns: 1000 })
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 6 }), b => void attempt({ TaskTemplate: { ContainerSpec: { Image: 'x' } }, ...(typeof b === 'object' && b && !Array.isArray(b) ? b : {}) })))
  t.pass()
})

t.test('a stored spec sent back (as docker service update does) is accepted unchanged', async t => {
  let accepted = 0
  fc.assert(
    fc.property(specBody(false), b => {
      const spec = attempt(b)
      if (!spec) return
      accepted++
      effective(spec)
      return isDeepStrictEqual(validate(spec), spec) && isDeepStrictEqual(validate(applyDefaults(spec)), applyDefaults(spec))
    }),
    { numRuns: 300 },
  )
  t.ok(accepted > 10, `some generated bodies are valid (${accepted})`)
})

t.test('validation is fast even on hostile names and images', async t => {
  const start = performance.now()
  for (const n of ['a'.repeat(5000) + '!', 'a-'.repeat(3000) + '!']) {
    t.throws(() => validate(body({ top: { Name: n } })), SwarmError)
    t.throws(() => validate(body({ container: { Image: n } })), SwarmError)
  }
  t.throws(() => validate(body({ container: { Image: `${'a.'.repeat(400)}/${'b-'.repeat(100)}!` } })), SwarmError)
  t.ok(performance.now() - start < 200, 'well under 200 ms')
})

t.test('a replica count past the limit is refused by name, not walked', async t => {
  const started = performance.now()
  t.throws(() => validate(body({ top: { Mode: { Replicated: { Replicas: 1e9 } } } })), swarmError('invalid_argument', "rpc error: code = InvalidArgument desc = Replicas: 1000000000 is more than swarmd's limit of 100000 tasks per service"))
  t.ok(performance.now() - started < 1_000)
  t.ok(validate(body({ top: { Mode: { Replicated: { Replicas: 100_000 } } } })), 'the limit itself is allowed')
})
