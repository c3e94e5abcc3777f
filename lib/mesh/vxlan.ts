import { SwarmdError } from '../types/errors.js'
import type { Vni } from './types.js'

/**
 * The RFC 7348 VXLAN header (8 bytes):
 *
 *   byte 0     flags: only the I flag (0x08) is defined; it says the VNI is valid
 *   bytes 1-3  reserved
 *   bytes 4-6  VNI, 24 bits big-endian
 *   byte 7     reserved
 *
 * Reserved bits are sent as zero and ignored on receive, as the RFC says.
 */

export const VXLAN_HEADER_LEN = 8
export const VXLAN_FLAG_I = 0x08
export const MAX_VNI = 0xffffff

/** Codes: E_VXLAN_SHORT, E_VXLAN_NO_I_FLAG, E_VXLAN_VNI. */
export class VxlanError extends SwarmdError {}

export function isValidVni(vni: number): vni is Vni {
  return Number.isInteger(vni) && vni >= 0 && vni <= MAX_VNI
}

/** Writes the header for `vni` at `offset` (no allocation, for the hot path). */
export function writeVxlanHeader(buf: Buffer, offset: number, vni: Vni): void {
  if (!isValidVni(vni)) throw new VxlanError('E_VXLAN_VNI', `VNI ${vni} is outside 0..${MAX_VNI}`)
  buf[offset] = VXLAN_FLAG_I
  buf[offset + 1] = 0
  buf[offset + 2] = 0
  buf[offset + 3] = 0
  buf.writeUIntBE(vni, offset + 4, 3)
  buf[offset + 7] = 0
}

export function encodeVxlanHeader(vni: Vni): Buffer {
  const b = Buffer.allocUnsafe(VXLAN_HEADER_LEN)
  writeVxlanHeader(b, 0, vni)
  return b
}

/**
 * The VNI of the header at `offset`, or -1 when the I flag is unset (the
 * frame is malformed for us). Never throws; the caller checks the length.
 */
export function readVxlanVni(buf: Uint8Array, offset: number): number {
  if ((buf[offset]! & VXLAN_FLAG_I) === 0) return -1
  return (buf[offset + 4]! << 16) | (buf[offset + 5]! << 8) | buf[offset + 6]!
}

export function decodeVxlanHeader(buf: Uint8Array, offset = 0): Vni {
  if (buf.length - offset < VXLAN_HEADER_LEN) throw new VxlanError('E_VXLAN_SHORT', `VXLAN header needs ${VXLAN_HEADER_LEN} bytes, got ${Math.max(0, buf.length - offset)}`)
  const vni = readVxlanVni(buf, offset)
  if (vni < 0) throw new VxlanError('E_VXLAN_NO_I_FLAG', 'VXLAN header without the I flag')
  return vni
}
