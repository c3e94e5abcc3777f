import t from 'tap'
import type { Secret } from '../types/secret.js'
import type { Service } from '../types/service.js'
import type { Task, TaskState } from '../types/task.js'
import {
  bytesSize,
  ellipsis,
  familiarImage,
  formatPorts,
  CONFIG_FORMAT,
  formatSecrets,
  formatServices,
  formatTasks,
  goTime,
  humanDuration,
  naturalLess,
  prettyConfig,
  prettySecret,
  prettyService,
  serviceStatus,
  truncateID,
  type ListedService,
} from './service-format.js'

const NOW = Date.parse('2024-05-01T12:00:00Z')
const ago = (ms: number): string => new Date(NOW - ms).toISOString()

function task(o: { id: string; service: string; slot?: number; node?: string; image?: string; desired: TaskState; state: TaskState; err?: string; ageMs: number; created?: string }): Task {
  return {
    ID: o.id,
    Version: { Index: 1 },
    CreatedAt: o.created ?? ago(o.ageMs),
    UpdatedAt: ago(o.ageMs),
    Labels: {},
    Spec: { ContainerSpec: { Image: o.image ?? 'myimage:mytag' } },
    ServiceID: o.service,
    ...(o.slot !== undefined && { Slot: o.slot }),
    ...(o.node && { NodeID: o.node }),
    Status: { Timestamp: ago(o.ageMs), State: o.state, Message: '', ...(o.err && { Err: o.err }) },
    DesiredState: o.desired,
  }
}

t.test('go-units HumanDuration', async t => {
  t.equal(humanDuration(500), 'Less than a second')
  t.equal(humanDuration(1000), '1 second')
  t.equal(humanDuration(6000), '6 seconds')
  t.equal(humanDuration(60_000), 'About a minute')
  t.equal(humanDuration(5 * 60_000), '5 minutes')
  t.equal(humanDuration(3_600_000), 'About an hour')
  t.equal(humanDuration(2 * 3_600_000), '2 hours')
  t.equal(humanDuration(3 * 86_400_000), '3 days')
  t.equal(humanDuration(20 * 86_400_000), '2 weeks')
  t.equal(humanDuration(90 * 86_400_000), '3 months')
  t.equal(humanDuration(800 * 86_400_000), '2 years')
})

t.test('natural sort puts service-name-1.1 before service-name-10.1', async t => {
  t.ok(naturalLess('service-name-1.1', 'service-name-10.1'))
  t.notOk(naturalLess('service-name-10.1', 'service-name-1.1'))
  t.ok(naturalLess('web.2', 'web.10'))
  t.ok(naturalLess('a01', 'a1') === false && naturalLess('a1', 'a01'), 'fewer zeros first')
  t.ok(naturalLess('1a', 'a'), 'digits before letters')
  t.notOk(naturalLess('x', 'x'))
})

t.test('IDs, images and errors as docker shortens them', async t => {
  t.equal(truncateID('yov6omdek8fg3k5stosyp2m50'), 'yov6omdek8fg')
  t.equal(truncateID('sha256:abcdef0123456789'), 'abcdef012345')
  t.equal(familiarImage('redis:7.4.1@sha256:6abc'), 'redis:7.4.1')
  t.equal(familiarImage('docker.io/library/nginx:alpine'), 'nginx:alpine')
  t.equal(familiarImage('docker.io/foo/bar:1'), 'foo/bar:1')
  t.equal(familiarImage('redis@sha256:6abc'), 'redis@sha256:6abc', 'no tag: left alone')
  t.equal(familiarImage('localhost:5000/app'), 'localhost:5000/app', 'a registry port is no tag')
  t.equal(familiarImage('localhost:5000/app:v1'), 'localhost:5000/app:v1')
  t.equal(ellipsis('No such image: redis@sha256:6abcdef', 30), 'No such image: redis@sha256:6…')
  t.equal(ellipsis('short', 30), 'short')
  t.equal(ellipsis('一二三四五', 6), '一二…')
})

// docker/cli cli/command/task/testdata/task-print-sorted.golden
const SORTED = `ID        NAME                IMAGE           NODE      DESIRED STATE   CURRENT STATE        ERROR     PORTS
id-bar    service-name-1.1    myimage:mytag   id-node   Ready           Failed 2 hours ago             
id-foo    service-name-10.1   myimage:mytag   id-node   Ready           Failed 2 hours ago             
`
// docker/cli cli/command/task/testdata/task-print-with-indentation.golden
const INDENTED = `ID        NAME                     IMAGE           NODE            DESIRED STATE   CURRENT STATE        ERROR     PORTS
id-foo    service-name-foo.1       myimage:mytag   node-name-bar   Ready           Failed 2 hours ago             
id-bar     \\_ service-name-foo.1   myimage:mytag   node-name-bar   Ready           Failed 2 hours ago             
`

t.test('service ps matches docker\'s golden tables', async t => {
  const h2 = 2 * 3_600_000
  const sorted = formatTasks(
    [
      task({ id: 'id-foo', service: 'service-id-ten', slot: 1, node: 'id-node', desired: 'ready', state: 'failed', ageMs: h2 }),
      task({ id: 'id-bar', service: 'service-id-one', slot: 1, node: 'id-node', desired: 'ready', state: 'failed', ageMs: h2 }),
    ],
    { services: new Map([['service-id-one', 'service-name-1'], ['service-id-ten', 'service-name-10']]), nodes: new Map() },
    { now: NOW, trunc: false },
  )
  t.equal(sorted, SORTED)
  const names = { services: new Map([['service-id-foo', 'service-name-foo']]), nodes: new Map([['id-node', 'node-name-bar']]) }
  const indented = formatTasks(
    [
      task({ id: 'id-bar', service: 'service-id-foo', slot: 1, node: 'id-node', desired: 'ready', state: 'failed', ageMs: h2, created: ago(h2 + 1000) }),
      task({ id: 'id-foo', service: 'service-id-foo', slot: 1, node: 'id-node', desired: 'ready', state: 'failed', ageMs: h2 }),
    ],
    names,
    { now: NOW, trunc: false },
  )
  t.equal(indented, INDENTED, 'the older task of a slot is indented under the newer')
  t.equal(formatTasks([task({ id: 'id-foo-yov6omdek8fg3k5stosyp2m50', service: 's', desired: 'running', state: 'running', ageMs: 0 })], names, { now: NOW, trunc: false, quiet: true }), 'id-foo-yov6omdek8fg3k5stosyp2m50\n')
  t.equal(formatTasks([task({ id: 'x', service: 'service-id-foo', node: 'node-id-bar', desired: 'running', state: 'running', ageMs: 0 })], { services: new Map(), nodes: new Map() }, { now: NOW, trunc: false, format: '{{ .Name }}' }), 'service-id-foo.node-id-bar\n', 'global tasks are named by node')
})

t.test('service ps with errors, history and truncation', async t => {
  const names = { services: new Map([['svc', 'redis']]), nodes: new Map([['n1', 'manager1'], ['n2', 'worker2']]) }
  const tasks = [
    task({ id: '50qe8lfnxaxk0000000000000', service: 'svc', slot: 1, node: 'n1', image: 'redis:7.4.1', desired: 'running', state: 'running', ageMs: 6000 }),
    task({ id: 'ky2re9oz86r90000000000000', service: 'svc', slot: 1, node: 'n1', image: 'redis:7.4.0', desired: 'shutdown', state: 'shutdown', ageMs: 8000, created: ago(60_000) }),
    task({ id: '3s46te2nzl4i0000000000000', service: 'svc', slot: 2, node: 'n2', image: 'redis:7.4.1@sha256:abc', desired: 'running', state: 'running', ageMs: 1000 }),
    task({ id: 'nvjljf7rmor40000000000000', service: 'svc', slot: 2, node: 'n2', image: 'redis:7.4.1', desired: 'shutdown', state: 'rejected', ageMs: 23_000, created: ago(60_000), err: 'No such image: redis@sha256:6abcdef0123' }),
  ]
  // swarm.md §4.3's sample, with CURRENT STATE one wider as tabwriter pads its longest cell (23) by 3.
  const want = `ID             NAME          IMAGE         NODE       DESIRED STATE   CURRENT STATE             ERROR                              PORTS
50qe8lfnxaxk   redis.1       redis:7.4.1   manager1   Running         Running 6 seconds ago                                        
ky2re9oz86r9    \\_ redis.1   redis:7.4.0   manager1   Shutdown        Shutdown 8 seconds ago                                       
3s46te2nzl4i   redis.2       redis:7.4.1   worker2    Running         Running 1 second ago                                         
nvjljf7rmor4    \\_ redis.2   redis:7.4.1   worker2    Shutdown        Rejected 23 seconds ago   "No such image: redis@sha256:6…"   
`
  t.equal(formatTasks(tasks, names, { now: NOW, trunc: true }), want)
  t.match(formatTasks(tasks, names, { now: NOW, trunc: false }), '"No such image: redis@sha256:6abcdef0123"', '--no-trunc keeps the whole error')
  const withPorts = task({ id: 'p', service: 'svc', slot: 1, desired: 'running', state: 'running', ageMs: 0 })
  withPorts.Status.PortStatus = { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'host' }, { Protocol: 'udp', TargetPort: 53, PublishedPort: 53, PublishMode: 'host' }] }
  t.match(formatTasks([withPorts], names, { now: NOW, trunc: true }), /\*:8080->80\/tcp,\*:53->53\/udp\n$/)
})

function service(o: Partial<Service['Spec']> & { id?: string; ports?: Service['Endpoint']['Ports'] }): ListedService {
  const { id, ports, ...spec } = o
  return {
    ID: id ?? 'c8wgl7q4ndfd2ce7zqe9sbsbq',
    Version: { Index: 1 },
    CreatedAt: ago(0),
    UpdatedAt: ago(0),
    Spec: { Name: 'frontend', TaskTemplate: { ContainerSpec: { Image: 'nginx:alpine' } }, Mode: { Replicated: { Replicas: 5 } }, ...spec },
    Endpoint: { Spec: {}, ...(ports && { Ports: ports }) },
  }
}

t.test('ls PORTS collapses consecutive ingress ports like docker', async t => {
  const p = (pub: number, target: number, proto: 'tcp' | 'udp' = 'tcp', mode: 'ingress' | 'host' = 'ingress') => ({ Protocol: proto, PublishedPort: pub, TargetPort: target, PublishMode: mode })
  t.equal(formatPorts([p(8080, 80)]), '*:8080->80/tcp')
  t.equal(formatPorts([p(81, 81), p(80, 80)]), '*:80-81->80-81/tcp')
  t.equal(formatPorts([p(80, 80), p(81, 81), p(82, 82), p(53, 53, 'udp'), p(54, 54, 'udp')]), '*:80-82->80-82/tcp, *:53-54->53-54/udp')
  t.equal(formatPorts([p(80, 80), p(90, 90)]), '*:80->80/tcp, *:90->90/tcp')
  t.equal(formatPorts([p(80, 80), p(81, 80), p(82, 80)]), '*:80-82->80/tcp', 'one target behind a published range')
  t.equal(formatPorts([p(80, 80), p(81, 81), p(82, 80)]), '*:80-81->80-81/tcp, *:82->80/tcp', 'a target going back ends a range')
  t.equal(formatPorts([p(8080, 80, 'tcp', 'host')]), '', 'host-mode ports are not shown')
  t.equal(formatPorts(undefined), '')
  // docker/cli's TestServiceContext_Ports
  const ports = [
    p(81, 80), p(80, 80), p(95, 95), p(90, 90), p(91, 91), p(92, 92), p(93, 93), p(94, 94),
    p(95, 95, 'udp'), p(90, 90, 'udp'), p(96, 96, 'udp'), p(91, 91, 'udp'), p(92, 92, 'udp'), p(93, 93, 'udp'), p(94, 94, 'udp'),
    p(60, 60), p(61, 61), p(62, 61),
    { Protocol: 'sctp' as const, PublishedPort: 97, TargetPort: 97, PublishMode: 'ingress' as const },
    { Protocol: 'sctp' as const, PublishedPort: 98, TargetPort: 98, PublishMode: 'ingress' as const },
  ]
  t.equal(formatPorts(ports), '*:97-98->97-98/sctp, *:60-61->60-61/tcp, *:62->61/tcp, *:80-81->80/tcp, *:90-95->90-95/tcp, *:90-96->90-96/udp')
})

t.test('service ls table, REPLICAS and sort', async t => {
  const services = [
    { ...service({ id: 'iwe3278osahjxxxxxxxxxxxxx', Name: 'agent', Mode: { Global: {} }, TaskTemplate: { ContainerSpec: { Image: 'busybox:latest@sha256:1' } } }), ServiceStatus: { RunningTasks: 7, DesiredTasks: 7 } },
    { ...service({ ports: [{ Protocol: 'tcp', PublishedPort: 8080, TargetPort: 80, PublishMode: 'ingress' }] }), ServiceStatus: { RunningTasks: 5, DesiredTasks: 5 } },
    { ...service({ id: 'dmu1ept4cxcfxxxxxxxxxxxxx', Name: 'redis', TaskTemplate: { ContainerSpec: { Image: 'redis:7.4.1' }, Placement: { MaxReplicas: 1 } } }), ServiceStatus: { RunningTasks: 2, DesiredTasks: 3 } },
  ]
  t.equal(
    formatServices(services, {}),
    `ID             NAME       MODE         REPLICAS               IMAGE            PORTS
iwe3278osahj   agent      global       7/7                    busybox:latest   
c8wgl7q4ndfd   frontend   replicated   5/5                    nginx:alpine     *:8080->80/tcp
dmu1ept4cxcf   redis      replicated   2/3 (max 1 per node)   redis:7.4.1      
`,
  )
  t.equal(formatServices(services, { quiet: true }), 'iwe3278osahjxxxxxxxxxxxxx\nc8wgl7q4ndfd2ce7zqe9sbsbq\ndmu1ept4cxcfxxxxxxxxxxxxx\n')
  t.equal(formatServices(services, { format: '{{.Name}}: {{.Replicas}}' }), 'agent: 7/7\nfrontend: 5/5\nredis: 2/3 (max 1 per node)\n')
  t.equal(formatServices(services, { format: 'table {{.Name}}\t{{.Mode}}' }), 'NAME       MODE\nagent      global\nfrontend   replicated\nredis      replicated\n')
  const jobs = [
    { ...service({ id: 'aaaaaaaaaaaaaaaaaaaaaaaaa', Name: 'job', Mode: { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } }, TaskTemplate: { ContainerSpec: { Image: 'busybox' }, Placement: { MaxReplicas: 1 } } }), ServiceStatus: { RunningTasks: 0, DesiredTasks: 1, CompletedTasks: 1 } },
    { ...service({ id: 'bbbbbbbbbbbbbbbbbbbbbbbbb', Name: 'sweep', Mode: { GlobalJob: {} }, TaskTemplate: { ContainerSpec: { Image: 'busybox' } } }), ServiceStatus: { RunningTasks: 1, DesiredTasks: 2, CompletedTasks: 1 } },
  ]
  t.equal(
    formatServices(jobs, {}),
    `ID             NAME      MODE             REPLICAS              IMAGE     PORTS
aaaaaaaaaaaa   job       replicated job   0/1 (1/1 completed)   busybox   
bbbbbbbbbbbb   sweep     global job       1/2 (1/3 completed)   busybox   
`,
    "jobs: docker's MODE and completions, no max per node",
  )
})

t.test('ServiceStatus from tasks when the daemon leaves it out', async t => {
  const s = service({ Mode: { Replicated: { Replicas: 3 } } })
  const g = service({ id: 'g', Mode: { Global: {} } })
  const tasks = [
    task({ id: '1', service: s.ID, slot: 1, node: 'n1', desired: 'running', state: 'running', ageMs: 0 }),
    task({ id: '2', service: s.ID, slot: 2, node: 'down', desired: 'running', state: 'running', ageMs: 0 }),
    task({ id: '3', service: s.ID, slot: 3, node: 'n1', desired: 'running', state: 'starting', ageMs: 0 }),
    task({ id: '4', service: 'g', node: 'n1', desired: 'running', state: 'running', ageMs: 0 }),
    task({ id: '5', service: 'g', node: 'n2', desired: 'shutdown', state: 'shutdown', ageMs: 0 }),
  ]
  t.same(serviceStatus(s, tasks, new Set(['n1', 'n2'])), { RunningTasks: 1, DesiredTasks: 3 })
  t.same(serviceStatus(g, tasks, new Set(['n1', 'n2'])), { RunningTasks: 1, DesiredTasks: 1 })
})

// docker/cli cli/command/service/testdata/service-inspect-pretty.golden, without the
// blocks swarmd's spec has no fields for (configs, log driver, PIDs, healthcheck).
const PRETTY = `
ID:\t\tde179gar9d0o7ltdybungplod
Name:\t\tmy_service
Labels:
 com.label=foo
Service Mode:\tReplicated
 Replicas:\t2
Placement:
ContainerSpec:
 Image:\t\tfoo/bar@sha256:this_is_a_test
Secrets:
 Target:\t/secrettest.conf
  Source:\tsecrettest.conf
Resources:
 Limits:
  CPU:\t\t100
  Memory:\t10MiB
Networks: mynetwork 
Endpoint Mode:\tvip
Ports:
 PublishedPort = 30000
  Protocol = tcp
  TargetPort = 5000
  PublishMode =  

`

t.test('inspect --pretty follows docker\'s template', async t => {
  const s: Service = {
    ID: 'de179gar9d0o7ltdybungplod',
    Version: { Index: 315 },
    CreatedAt: ago(0),
    UpdatedAt: ago(0),
    Spec: {
      Name: 'my_service',
      Labels: { 'com.label': 'foo' },
      TaskTemplate: {
        ContainerSpec: {
          Image: 'foo/bar@sha256:this_is_a_test',
          Secrets: [{ SecretID: '3hv39ehbbb4hdozo7spod9ftn', SecretName: 'secrettest.conf', File: { Name: '/secrettest.conf' } }],
        },
        Resources: { Limits: { NanoCPUs: 100000000000, MemoryBytes: 10490000 } },
        Networks: [{ Target: '5vpyomhb6ievnk0i0o60gcnei', Aliases: ['web'] }],
      },
      Mode: { Replicated: { Replicas: 2 } },
      EndpointSpec: { Mode: 'vip', Ports: [{ Protocol: 'tcp', TargetPort: 5000 }] },
    },
    Endpoint: { Spec: {}, Ports: [{ Protocol: 'tcp', TargetPort: 5000, PublishedPort: 30000 } as never] },
    UpdateStatus: { State: '' as never, StartedAt: ago(0), CompletedAt: ago(0), Message: '' },
  }
  t.equal(prettyService(s, { now: NOW, networks: new Map([['5vpyomhb6ievnk0i0o60gcnei', 'mynetwork']]) }), PRETTY)

  const full: Service = {
    ...s,
    Spec: {
      Name: 'web',
      TaskTemplate: {
        ContainerSpec: { Image: 'nginx:alpine', Args: ['sh', '-c'], Env: ['A=1'], Dir: '/app', User: 'nobody', Init: false },
        Resources: { Reservations: { NanoCPUs: 5e8, MemoryBytes: 64 * 1024 ** 2 }, Limits: {} },
        Placement: { Constraints: ['node.role==worker', 'node.labels.a==b'], Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }], MaxReplicas: 2 },
      },
      Mode: { Global: {} },
      UpdateConfig: { Parallelism: 1, Delay: 10e9, FailureAction: 'pause', Monitor: 5e9, MaxFailureRatio: 0, Order: 'stop-first' },
      RollbackConfig: { Parallelism: 0, FailureAction: 'continue', Monitor: 0, MaxFailureRatio: 0.2, Order: 'start-first' },
    },
    Endpoint: { Spec: {} },
    UpdateStatus: { State: 'completed', StartedAt: ago(120_000), CompletedAt: ago(60_000), Message: 'update completed' },
  }
  t.equal(
    prettyService(full, { now: NOW }),
    `
ID:\t\tde179gar9d0o7ltdybungplod
Name:\t\tweb
Service Mode:\tGlobal
UpdateStatus:
 State:\t\tcompleted
 Started:\t2 minutes ago
 Completed:\tAbout a minute ago
 Message:\tupdate completed
Placement:
 Constraints:\t[node.role==worker node.labels.a==b]
 Preferences:   [spread=node.labels.zone]
 Max Replicas Per Node:   2
UpdateConfig:
 Parallelism:\t1
 Delay:\t\t10s
 On failure:\tpause
 Monitoring Period: 5s
 Max failure ratio: 0
 Update order:      stop-first
RollbackConfig:
 Parallelism:\t0
 On failure:\tcontinue
 Max failure ratio: 0.2
 Rollback order:    start-first
ContainerSpec:
 Image:\t\tnginx:alpine
 Args:\t\tsh -c 
 Env:\t\tA=1 
 Dir:\t\t/app
 Init:\t\tfalse
 User: nobody
Resources:
 Reservations:
  CPU:\t\t0.5
  Memory:\t64MiB
Endpoint Mode:\t

`,
  )
})

t.test('sizes and times as Go prints them', async t => {
  t.equal(bytesSize(10490000), '10MiB')
  t.equal(bytesSize(1536), '1.5KiB')
  t.equal(bytesSize(512), '512B')
  t.equal(bytesSize(1024 ** 3), '1GiB')
  t.equal(goTime('2024-01-02T03:04:05.500000000Z'), '2024-01-02 03:04:05.5 +0000 utc')
  t.equal(goTime('2024-01-02T03:04:05Z'), '2024-01-02 03:04:05 +0000 utc')
})

function secret(id: string, name: string, driver?: string): Secret & { Spec: { Driver?: { Name: string } } } {
  return { ID: id, Version: { Index: 1 }, CreatedAt: ago(2 * 3_600_000), UpdatedAt: ago(3_600_000), Spec: { Name: name, ...(driver && { Driver: { Name: driver } }) } }
}

t.test('secret ls matches docker\'s golden table', async t => {
  // docker/cli cli/command/secret/testdata/secret-list-sort.golden
  const want = `ID          NAME      DRIVER    CREATED       UPDATED
ID-1-foo    1-foo               2 hours ago   About an hour ago
ID-2-foo    2-foo     driver    2 hours ago   About an hour ago
ID-10-foo   10-foo    driver    2 hours ago   About an hour ago
`
  const list = [secret('ID-2-foo', '2-foo', 'driver'), secret('ID-10-foo', '10-foo', 'driver'), secret('ID-1-foo', '1-foo')]
  t.equal(formatSecrets(list, { now: NOW }), want)
  t.equal(formatSecrets(list, { now: NOW, quiet: true }), 'ID-1-foo\nID-2-foo\nID-10-foo\n')
})

t.test('secret inspect --pretty matches docker\'s golden', async t => {
  // docker/cli cli/command/secret/testdata/secret-inspect-pretty.simple.golden (times from our clock)
  const s = { ...secret('secretID', 'secretName', 'driver'), CreatedAt: '2024-01-02T03:04:05Z', UpdatedAt: '2024-01-02T03:04:05.25Z' }
  s.Spec.Labels = { lbl1: 'value1' }
  t.equal(
    prettySecret(s),
    `ID:              secretID
Name:              secretName
Labels:
 - lbl1=value1
Driver:            driver
Created at:        2024-01-02 03:04:05 +0000 utc
Updated at:        2024-01-02 03:04:05.25 +0000 utc
`,
  )
})

t.test('config ls and inspect --pretty as docker 28 prints them (no driver; tabs; the data)', async t => {
  const c = { ID: 'cfgID', Version: { Index: 1 }, CreatedAt: '2024-01-02T03:04:05Z', UpdatedAt: '2024-01-02T03:04:05.25Z', Spec: { Name: 'app', Labels: { k: 'v' }, Data: Buffer.from('conf\n').toString('base64') } }
  t.equal(formatSecrets([{ ...c, CreatedAt: ago(2 * 3_600_000), UpdatedAt: ago(3_600_000) }], { now: NOW }, CONFIG_FORMAT), 'ID        NAME      CREATED       UPDATED\ncfgID     app       2 hours ago   About an hour ago\n')
  // Taken from docker 28's `config inspect --pretty` against swarmd.
  t.equal(prettyConfig(c), 'ID:\t\t\tcfgID\nName:\t\t\tapp\nLabels:\n - k=v\nCreated at:            \t2024-01-02 03:04:05 +0000 utc\nUpdated at:            \t2024-01-02 03:04:05.25 +0000 utc\nData:\nconf\n\n')
})
