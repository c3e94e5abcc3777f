import t from 'tap'
import { detectKernelSupport } from './detect.js'
import type { Runner } from './runner.js'

t.test('not root: nothing is probed', async t => {
  const calls: string[] = []
  const run: Runner = async p => (calls.push(p), { code: 0, stdout: '', stderr: '' })
  t.same(await detectKernelSupport({ run, uid: 1000 }), { usable: false, missing: ['root'], esp: false, conntrack: false })
  t.same(calls, [])
})

t.test('what fails is named: a link kind the kernel lacks, a missing command, an nft feature', async t => {
  const run: Runner = async (p, args) => {
    if (p === 'unshare' && args[1] === 'ip' && args[2] === '-force') return { code: 1, stdout: '', stderr: 'Error: Unknown device type.\nCommand failed -:3\n' }
    if (p === 'bridge') return { code: 127, stdout: '', stderr: 'spawn bridge ENOENT' }
    if (p === 'unshare' && args[1] === 'nft') return { code: 1, stdout: '', stderr: 'Error: Could not process rule: No such file or directory\nmore' }
    if (p === 'unshare' && args[2] === 'xfrm') return { code: 2, stdout: '', stderr: 'Requested AEAD algorithm not found.' }
    if (p === 'conntrack') return { code: 127, stdout: '', stderr: 'spawn conntrack ENOENT' }
    return { code: 0, stdout: '', stderr: '' }
  }
  t.same(await detectKernelSupport({ run, uid: 0 }), { usable: false, missing: ['the bridge command', 'vxlan links', 'nftables (Error: Could not process rule: No such file or directory)'], esp: false, conntrack: false })
})

t.test('no network namespaces: said with the reason', async t => {
  const run: Runner = async () => ({ code: 1, stdout: '', stderr: 'unshare: unshare failed: Operation not permitted' })
  t.same(await detectKernelSupport({ run, uid: 0 }), { usable: false, missing: ['network namespaces (unshare -n: unshare: unshare failed: Operation not permitted)'], esp: false, conntrack: false })
})

t.test('this host, probed for real', { skip: process.getuid?.() === 0 ? false : 'needs root' }, async t => {
  const s = await detectKernelSupport()
  t.same(s.missing, [], 'root, namespaces, veth, bridge, vxlan and nftables are here')
  t.ok(s.usable)
  t.comment(`the conntrack tool: ${s.conntrack ? 'present' : 'absent (flows of removed UDP backends expire by their timeout)'}`)
  t.comment(`IPsec ESP with AES-GCM: ${s.esp ? 'present' : 'absent (encrypted overlays ride the sealed tunnel)'}`)
})
