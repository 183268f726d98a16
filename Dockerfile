# Builds ngx_wsgi and runs its test suite with the same commands as CI
# (.ci/run → make test). The image then serves the example on port 8080.
#   docker build -t ngx_wsgi .
#   docker run --rm -p 8080:8080 ngx_wsgi
FROM rust:1-bookworm

WORKDIR /src
COPY . .
# make test installs the apt packages and Test::Nginx it needs, builds nginx
# and the module, and runs cargo test plus the Test::Nginx suite.
RUN bash .ci/run

EXPOSE 8080
# nginx itself is the container's process (exec), so `docker stop` reaches
# it; SIGQUIT is its graceful quit, which lets requests in flight finish.
STOPSIGNAL SIGQUIT
CMD ["sh", "-c", "sed -i 's/listen 127.0.0.1:8080;/listen 8080;/' nginx-conf/example.conf && exec target/nginx/sbin/nginx -p target/nginx -c /src/nginx-conf/example.conf -g 'daemon off;'"]
