import t from 'tap'
import fc from 'fast-check'
import { thrown } from '../test-helpers.test-helper.js'
import { MAX_VNI, VXLAN_HEADER_LEN, VxlanError, decodeVxlanHeader, encodeVxlanHeader, isValidVni, readVxlanVni } from './vxlan.js'

t.test('RFC 7348 layout: I flag, reserved zero, 24-bit VNI', async (t) => {
  t.same([...encodeVxlanHeader(0x123456)], [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0])
  t.same([...encodeVxlanHeader(4096)], [0x08, 0, 0, 0, 0x00, 0x10, 0x00, 0])
  t.equal(VXLAN_HEADER_LEN, 8)
})

t.test('VNI range is enforced on encode', async (t) => {
  for (const bad of [-1, MAX_VNI + 1, 1.5, Number.NaN]) {
    const e = thrown(t, () => encodeVxlanHeader(bad))
    t.ok(e instanceof VxlanError, `${bad}`)
    t.equal((e as VxlanError).code, 'E_VXLAN_VNI')
  }
  t.ok(isValidVni(0) && isValidVni(MAX_VNI))
})

t.test('reserved bits are ignored on receive; a missing I flag is refused', async (t) => {
  const h = Buffer.from([0xff & ~0x00, 0xaa, 0xbb, 0xcc, 0x00, 0x10, 0x01, 0xdd])
  t.equal(decodeVxlanHeader(h), 4097)
  const noI = Buffer.from([0xf7, 0, 0, 0, 0, 0x10, 0, 0])
  t.equal(readVxlanVni(noI, 0), -1)
  t.equal((thrown(t, () => decodeVxlanHeader(noI)) as VxlanError).code, 'E_VXLAN_NO_I_FLAG')
  t.equal((thrown(t, () => decodeVxlanHeader(Buffer.alloc(7))) as VxlanError).code, 'E_VXLAN_SHORT')
  t.equal(decodeVxlanHeader(Buffer.concat([Buffer.alloc(3), encodeVxlanHeader(77)]), 3), 77)
})

t.test('property: decode(encode(vni)) = vni; random headers decode or throw VxlanError', async () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: MAX_VNI }), (vni) => decodeVxlanHeader(encodeVxlanHeader(vni)) === vni))
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 12 }), (b) => {
      try {
        const v = decodeVxlanHeader(b)
        return isValidVni(v) && (b[0]! & 0x08) !== 0
      } catch (e) {
        return e instanceof VxlanError
      }
    }),
  )
})
