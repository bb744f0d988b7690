# An app image: the atoll image (../Dockerfile) with one bundle baked in.
# What deploy/kubernetes runs: every replica serves the same immutable app,
# and a new version is a new tag rolled out (README, "Running in a container").
#
#   mkdir -p dist && atoll bundle --build path/to/app -o dist/app.atoll
#   docker build -f deploy/app.Dockerfile -t shop:1.4.0 dist
#
# The context is the directory holding app.atoll, not the repository (whose
# .dockerignore admits only the sources).
ARG ATOLL_IMAGE=atoll:latest
FROM ${ATOLL_IMAGE}
COPY app.atoll /app/app.atoll
CMD ["serve", "/app/app.atoll", "--listen", "0.0.0.0:3000"]
