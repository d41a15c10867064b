# syntax=docker/dockerfile:1
#
# harouter-operator image: the operator (entrypoint) and harouterctl, as plain JavaScript compiled from
# the TypeScript sources by src/compile.ts (Node's own type erasure, every line and column kept): type
# stripping at run time would load Node's TypeScript parser into every process (about 30 MiB each).
#
#   docker build -t harouter-operator:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run --rm harouter-operator:0.1.0 --help
#   docker run --rm --entrypoint harouterctl harouter-operator:0.1.0 --help
#
# keepalived (Debian's package) is in the runtime for the node agent's --run-keepalived.
# The runtime is node:<version>-slim rather than distroless because both programs are `#!/usr/bin/env node`
# shims meant to be run by name (keepalived notify scripts call `harouterctl`); npm, npx, corepack and
# yarn are removed from it. NODE_VERSION is the version the project pins in package.json (devDependency
# `node`); a unit test keeps the two equal.

ARG NODE_VERSION=24.21.0

# ---- build: production dependencies only -----------------------------------------------------------
FROM node:${NODE_VERSION}-slim AS build
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency runs code at install time; --omit=dev: no test or lint tooling.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force
COPY bin/ ./bin/
COPY src/ ./src/
RUN node --disable-warning=ExperimentalWarning src/compile.ts --out dist

# ---- runtime ---------------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-slim AS runtime
# Global ARGs are visible to FROM only: redeclare the one the labels use.
ARG NODE_VERSION
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="harouter-operator" \
      org.opencontainers.image.description="Kubernetes operator for VRRP/keepalived HA routers: authenticated state reports, active-agent decisions, routing and metrics; includes harouterctl" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/harouter/harouter-operator" \
      org.opencontainers.image.documentation="https://github.com/harouter/harouter-operator/tree/main/docs" \
      org.opencontainers.image.vendor="harouter" \
      org.opencontainers.image.base.name="docker.io/library/node:${NODE_VERSION}-slim"

# keepalived from Debian's packages: the node agent runs it with --run-keepalived (the chart's
# reporter.agent.keepalived.run). Its sample configuration is removed: the agent writes its own.
RUN apt-get update \
 && apt-get install -y --no-install-recommends keepalived \
 && rm -rf /var/lib/apt/lists/* /etc/keepalived/*

# Drop the package managers from the runtime (not needed to run, one less thing to patch).
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /opt/yarn-* \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg

WORKDIR /app
ENV NODE_ENV=production
# Files stay owned by root and read-only for the runtime user.
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/bin ./bin
COPY --from=build /app/dist/src ./src
RUN chmod 0755 bin/harouter-operator.js bin/harouterctl.js \
 && ln -s /app/bin/harouter-operator.js /usr/local/bin/harouter-operator \
 && ln -s /app/bin/harouterctl.js /usr/local/bin/harouterctl

# Numeric non-root user (the chart sets runAsNonRoot, which needs a numeric UID to verify).
USER 65532:65532
EXPOSE 8080 8081 9443
ENTRYPOINT ["harouter-operator"]
