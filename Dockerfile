# Two stages. The first builds ngx_wsgi and runs the whole test suite with
# the commands CI runs (.ci/run: make test, then make test-distro, which
# builds the Debian package for Debian 12's nginx, installs it and tests it
# there). The second is the runtime image: Debian 12 slim, Debian's nginx,
# that package, and the example app on port 8080, installed by the script
# make test-distro runs too (scripts/debian-install).
#   docker build -t ngx_wsgi .
#   docker run --rm -p 8080:8080 ngx_wsgi
FROM rust:1-bookworm AS build

WORKDIR /src
COPY . .
# .ci/run less its fuzzing (nightly Rust, which rust:1-bookworm lacks).
RUN NGX_WSGI_FUZZ=skip bash .ci/run

FROM debian:bookworm-slim

COPY --from=build /src/target/debian/libnginx-mod-http-wsgi_*.deb /tmp/
COPY --from=build /src/scripts/debian-install /opt/ngx_wsgi/scripts/
COPY --from=build /src/nginx-conf/debian/wsgi-example /opt/ngx_wsgi/nginx-conf/debian/
COPY --from=build /src/nginx-conf/apps/showcase.py /opt/ngx_wsgi/nginx-conf/apps/
# The example site only (Debian's default site is for port 80); logs to the
# container's stdout and stderr, as nginx's official image has them.
RUN /opt/ngx_wsgi/scripts/debian-install /tmp/libnginx-mod-http-wsgi_*.deb --site 8080 \
 && rm -f /etc/nginx/sites-enabled/default /tmp/libnginx-mod-http-wsgi_*.deb \
 && rm -rf /var/lib/apt/lists/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log

EXPOSE 8080
# SIGQUIT is nginx's graceful quit: requests in flight finish.
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
