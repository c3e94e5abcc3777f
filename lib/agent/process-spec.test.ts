import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import type { ContainerSpec, TaskSpec } from '../types/service.js'
import { checkProcessSpec, mountVariable, prepareMounts, prlimitArgs } from './process-spec.js'

const spec = (c: Partial<ContainerSpec>, task: Partial<TaskSpec> = {}): TaskSpec => ({ ContainerSpec: { Image: 'x', ...c }, ...task })

t.test('what only a container has is refused by name', async t => {
  const cases: [string, TaskSpec][] = [
    ['ContainerSpec.ReadOnly is not supported by the process executor', spec({ ReadOnly: true })],
    ['ContainerSpec.TTY is not supported', spec({ TTY: true })],
    ['ContainerSpec.User is not supported', spec({ User: 'nobody' })],
    ['ContainerSpec.CapabilityAdd is not supported', spec({ CapabilityAdd: ['CAP_NET_ADMIN'] })],
    ['ContainerSpec.CapabilityDrop is not supported', spec({ CapabilityDrop: ['ALL'] })],
    ['ContainerSpec.DNSConfig is not supported', spec({ DNSConfig: { Nameservers: ['10.0.0.2'] } })],
    ['ContainerSpec.Hosts is not supported', spec({ Hosts: ['10.0.0.1 db'] })],
    ['ContainerSpec.Sysctls is not supported', spec({ Sysctls: { 'net.core.somaxconn': '1' } })],
    ['Resources.Limits.MemoryBytes is not supported', spec({}, { Resources: { Limits: { MemoryBytes: 1 << 30 } } })],
    ['Resources.Limits.Pids is not supported', spec({}, { Resources: { Limits: { Pids: 10 } } })],
    ['TaskTemplate.LogDriver (syslog) is not supported', spec({}, { LogDriver: { Name: 'syslog' } })],
    ['Mounts[/data] of type "volume" is not supported', spec({ Mounts: [{ Type: 'volume', Source: 'vol', Target: '/data' }] })],
    ['Mounts[/etc/x].ReadOnly is not supported', spec({ Mounts: [{ Type: 'bind', Source: '/etc', Target: '/etc/x', ReadOnly: true }] })],
    ['Mounts[/t].TmpfsOptions.SizeBytes is not supported', spec({ Mounts: [{ Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 1 } }] })],
  ]
  for (const [message, s] of cases) t.throws(() => checkProcessSpec(s), { message: new RegExp(`^${message.replace(/[[\]().]/g, '\\$&')}`) }, message)
})

t.test("the docker CLI's empty defaults, and what a process can have, pass", async t => {
  t.doesNotThrow(() =>
    checkProcessSpec(
      spec({
        Init: false,
        DNSConfig: {},
        Hosts: [],
        Sysctls: {},
        CapabilityAdd: [],
        Groups: [],
        Isolation: 'default',
        Ulimits: [{ Name: 'nofile', Soft: 100, Hard: 200 }],
        StopSignal: 'SIGINT',
        Mounts: [{ Type: 'bind', Source: '/etc', Target: '/conf' }, { Type: 'tmpfs', Target: '/scratch' }],
        Healthcheck: { Test: ['CMD', 'true'] },
      }, { LogDriver: { Name: 'json-file' }, Resources: { Limits: {}, Reservations: { MemoryBytes: 1 << 20 } } }),
    ),
  )
})

t.test("mounts are checked as dockerd checks them, with Docker's texts", async t => {
  const check = (m: NonNullable<ContainerSpec['Mounts']>[number]) => () => checkProcessSpec(spec({ Mounts: [m] }))
  t.throws(check({ Type: 'bind', Source: '/x-does-not-exist', Target: '/data' }), { message: 'invalid mount config for type "bind": bind source path does not exist: /x-does-not-exist' })
  t.throws(check({ Type: 'bind', Source: 'relative', Target: '/data' }), { message: 'invalid bind mount source, must be an absolute path: relative' })
  t.throws(check({ Type: 'bind', Source: '/etc', Target: 'data' }), { message: 'invalid mount target, must be an absolute path: data' })
  t.throws(check({ Type: 'tmpfs', Source: '/etc', Target: '/t' }), { message: 'invalid tmpfs source, source must be empty' })
})

t.test('mount paths reach the task as SWARMD_MOUNT_<TARGET>; a tmpfs mount is a fresh directory', async t => {
  t.equal(mountVariable('/data'), 'SWARMD_MOUNT_DATA')
  t.equal(mountVariable('/var/lib/my-app/'), 'SWARMD_MOUNT_VAR_LIB_MY_APP')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmd-mounts-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const env = prepareMounts([{ Type: 'bind', Source: '/etc', Target: '/conf' }, { Type: 'tmpfs', Target: '/scratch', TmpfsOptions: { Mode: 0o700 } }], () => dir)
  t.equal(env.SWARMD_MOUNT_CONF, '/etc')
  t.equal(env.SWARMD_MOUNT_SCRATCH, path.join(dir, 'mount-1'))
  t.equal(fs.statSync(env.SWARMD_MOUNT_SCRATCH!).mode & 0o7777, 0o700)
})

t.test("ulimits as prlimit's options; an unknown name is Docker's error", async t => {
  t.same(prlimitArgs([{ Name: 'nofile', Soft: 1024, Hard: 2048 }, { Name: 'core', Soft: 0, Hard: 0 }]), ['--nofile=1024:2048', '--core=0:0'])
  t.throws(() => prlimitArgs([{ Name: 'files', Soft: 1, Hard: 1 }]), { message: 'invalid ulimit type: files' })
})
