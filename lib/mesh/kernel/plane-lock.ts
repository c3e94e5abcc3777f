import fs from 'node:fs'
import path from 'node:path'

/**
 * One swarmd per network namespace may run the kernel data plane: its link
 * names, its nft table and the VXLAN port are the namespace's, not the
 * daemon's. The claim is a file named for the namespace (its inode), with
 * the owner's pid; a claim whose process is gone, or lives in another
 * namespace now, is stale and taken over (a crashed daemon's successor
 * adopts what it left).
 */
export class PlaneLock {
  private constructor(private readonly file: string) {}

  /** The lock, or the pid of the live daemon that holds it. */
  static acquire(dir = '/run/swarmd'): PlaneLock | { heldBy: number } {
    const ns = netnsInode(process.pid)
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    const file = path.join(dir, `kernel-plane-${ns}.pid`)
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 })
        return new PlaneLock(file)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      }
      const pid = Number(fs.readFileSync(file, 'utf8').trim())
      if (pid !== process.pid && Number.isInteger(pid) && pid > 0 && netnsInode(pid) === ns) return { heldBy: pid }
      fs.rmSync(file, { force: true })
    }
    return { heldBy: Number(fs.readFileSync(file, 'utf8').trim()) }
  }

  release(): void {
    try {
      if (Number(fs.readFileSync(this.file, 'utf8').trim()) === process.pid) fs.rmSync(this.file, { force: true })
    } catch {
      // Already gone.
    }
  }
}

/** The inode of a process's network namespace, or undefined when the process is gone. */
function netnsInode(pid: number): number | undefined {
  try {
    return fs.statSync(`/proc/${pid}/ns/net`).ino
  } catch {
    return undefined
  }
}
