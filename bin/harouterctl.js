#!/usr/bin/env node
// harouterctl: reports keepalived's VRRP transitions as HARouterState objects.
// From a checkout this runs the TypeScript sources (Node 24's type stripping); the image runs its
// compiled twin (`npm run build`, src/compile.ts).
import { run } from '../src/cli/main.ts';

await run();
