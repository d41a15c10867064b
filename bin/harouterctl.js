#!/usr/bin/env node
// harouterctl: reports keepalived's VRRP transitions as HARouterState objects.
// Runs the TypeScript source directly with Node 24's type stripping (no build step).
import { run } from '../src/cli/main.ts';

await run();
