/**
 * The kernel rows of `npm run bench:mesh` alone (bench/kernel-rows.ts): a
 * published port to a local task and across VXLAN to a task on a second
 * node, against a direct connection and HAProxy in the same run, keep-alive,
 * connection close and bulk, in namespaces, as root. Prints one JSON object
 * per row, then the ratios (or why it was skipped). MESH_BENCH_SECONDS
 * overrides the 5 s per case; MESH_BENCH_TESTS=http_keepalive,http_close,bulk_p1
 * runs only those tests; MESH_BENCH_CASES=kernel_published,... only those
 * cases and their peers.
 */
import { kernelRows, WRK, type KernelTest } from './kernel-rows.js'

const seconds = Number(process.env.MESH_BENCH_SECONDS ?? 5)
const tests = process.env.MESH_BENCH_TESTS?.split(',').filter(Boolean)
const cases = process.env.MESH_BENCH_CASES?.split(',').filter(Boolean)
const out = await kernelRows({ seconds, tests: (t: KernelTest) => !tests || tests.includes(t), ...(cases ? { cases } : {}), emit: r => process.stdout.write(JSON.stringify(r) + '\n') })
process.stdout.write(JSON.stringify({ bench: 'mesh_kernel_ratios', ...('skipped' in out ? { skipped: out.skipped } : out.ratios), seconds, wrk: WRK }) + '\n')
