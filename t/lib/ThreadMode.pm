package ThreadMode;

# Thread mode for the data-driven test files: with TEST_NGINX_WSGI_THREADS=N
# every test block's http{} gets `wsgi_threads N;`, so the same blocks run
# with each app on a pool thread (and TEST_NGINX_WSGI_MAX_TEMP_FILE_SIZE=S,
# `wsgi_max_temp_file_size S;`). t/threads/*.t run files this way; the
# raw-socket tests (NginxRunner) read the same variables.

use strict;
use warnings;
use Test::Nginx::Socket ();

if (my $n = $ENV{TEST_NGINX_WSGI_THREADS}) {
    Test::Nginx::Socket::set_http_config_filter(sub {
        my ($config) = @_;
        my $spill = $ENV{TEST_NGINX_WSGI_MAX_TEMP_FILE_SIZE};
        return ($config // '') . "\n    wsgi_threads $n;\n"
            . (defined $spill ? "    wsgi_max_temp_file_size $spill;\n" : '');
    });
    # A line a pool thread logs after the response is out (from close() of
    # a 204's iterable, say) reaches error.log through the event loop a
    # moment later: give it that moment before the log is checked, either way.
    # Loaded before the test file, this runs after its defaults (WsgiTest).
    Test::Nginx::Socket::add_block_preprocessor(sub {
        my ($block) = @_;
        if ((defined $block->error_log || defined $block->no_error_log) && !defined $block->wait) {
            $block->set_value("wait", 0.1);
        }
    });
}

1;
