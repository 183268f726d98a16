package ThreadMode;

# Thread mode for the data-driven test files: with TEST_NGINX_WSGI_THREADS=N
# every test block's http{} gets `wsgi_threads N;`, so the same blocks run
# with each app on a pool thread. t/threads/*.t run files this way; the
# raw-socket tests (NginxRunner) read the same variable.

use strict;
use warnings;
use Test::Nginx::Socket ();

if (my $n = $ENV{TEST_NGINX_WSGI_THREADS}) {
    Test::Nginx::Socket::set_http_config_filter(sub {
        my ($config) = @_;
        return ($config // '') . "\n    wsgi_threads $n;\n";
    });
}

1;
