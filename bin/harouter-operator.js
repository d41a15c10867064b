#!/usr/bin/env node
// harouter-operator: the Kubernetes operator for HARouters (see `--help`).
// Runs the TypeScript source directly with Node 24's type stripping (no build step).
import { run } from '../src/main.ts';

await run();
