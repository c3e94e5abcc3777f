#!/usr/bin/env node
import { main } from '../dist/lib/cli/swarmd.js'

process.exitCode = await main(process.argv.slice(2))
