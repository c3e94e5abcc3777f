/**
 * Tests that need what a machine may lack (root, serf, Go, tcpdump, a
 * dockerd). Outside CI such a test is skipped, and tap records the skip with
 * its reason; under SWARMD_REQUIRE_PEERS=1 (.ci/run sets it) every test must
 * run, so a missing prerequisite fails the test, saying what is missing.
 */
import type { Test } from 'tap'
import { which } from './procs.js'

export const REQUIRED = process.env.SWARMD_REQUIRE_PEERS === '1'

/**
 * `t.test(name, fn)` when nothing is `missing` (undefined or false);
 * otherwise a recorded skip with `missing` as its reason, or under
 * SWARMD_REQUIRE_PEERS=1 a failure naming it.
 */
export function testNeeding(t: Test, name: string, missing: string | false | undefined, fn: (t: Test) => Promise<void>): Promise<unknown> {
  if (!missing) return t.test(name, fn)
  if (REQUIRED) {
    return t.test(name, async t => {
      t.fail(`SWARMD_REQUIRE_PEERS=1 but this test cannot run here: ${missing}`)
    })
  }
  return t.test(name, { skip: missing }, fn)
}

export const TCPDUMP = which('tcpdump', ['/usr/bin/tcpdump', '/usr/sbin/tcpdump'])
/** Why no packet capture can be taken here, or undefined. */
export const captureMissing = !TCPDUMP ? 'tcpdump is not installed (run scripts/setup.sh as root)' : process.getuid?.() !== 0 ? 'capturing needs root' : undefined

export const DOCKER = which('docker')
/** Why the real docker CLI cannot drive the daemon here, or undefined. */
export const dockerCliMissing = DOCKER ? undefined : 'the docker CLI is not installed (run scripts/setup-docker.sh as root)'

export const ETCD = which('etcd', ['/usr/bin/etcd'])
/** Why several managers cannot run here (they need etcd), or undefined. */
export const etcdMissing = ETCD ? undefined : "etcd is not installed (Debian's etcd-server: run scripts/setup.sh as root)"

export const PROMTOOL = which('promtool', ['/usr/bin/promtool'])
/** Why Prometheus's checker cannot be run here, or undefined. */
export const promtoolMissing = PROMTOOL ? undefined : "promtool is not installed (Debian's prometheus: run scripts/setup.sh as root)"

export const CHROMIUM = which('chromium', ['/usr/bin/chromium'])
/** Why no real browser can load a page here, or undefined. */
export const chromiumMissing = CHROMIUM ? undefined : "Chromium is not installed (Debian's chromium: run scripts/setup.sh as root)"

export const CONNTRACK = which('conntrack', ['/usr/sbin/conntrack'])
/** Why no conntrack entry can be listed or deleted here, or undefined. */
export const conntrackMissing = CONNTRACK ? undefined : "the conntrack tool is not installed (Debian's conntrack: run scripts/setup.sh as root)"
