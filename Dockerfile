# treadle: a Tangled spindle. Two stages: production dependencies are installed in the first,
# the second holds them, the sources (run by Node's type stripping, so there is no build step),
# git and ssh for landing, and runs as the unprivileged `node` user.
# Build: docker build -t treadle .   (or `fly deploy`, which builds this file)

ARG NODE_VERSION=22.23.5

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# better-sqlite3 ships prebuilt binaries in its package: no compiler, no install scripts.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim
# git + openssh-client: landing pushes to knots; tini: PID 1 that forwards SIGTERM and reaps git.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data \
 && chown node:node /data
ENV NODE_ENV=production \
    TREADLE_DB=/data/treadle.db \
    TREADLE_REPO_DIR=/data/repos \
    TREADLE_LISTEN=0.0.0.0:6555
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY src ./src
COPY providers ./providers
COPY lexicons ./lexicons
COPY fakes ./fakes
USER node
VOLUME ["/data"]
EXPOSE 6555
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--max-semi-space-size=2", "bin/treadle.js", "serve"]
