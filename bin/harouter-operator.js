#!/usr/bin/env node
// harouter-operator: the Kubernetes operator for HARouters (see `--help`).
// From a checkout this runs the TypeScript sources (Node 24's type stripping); the image runs its
// compiled twin (`npm run build`, src/compile.ts).
import { run } from '../src/main.ts';

await run();
