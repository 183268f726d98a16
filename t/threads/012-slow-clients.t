# t/012-slow-clients.t again, with every app on a pool thread (wsgi_threads 4)
# and spilling off (wsgi_max_temp_file_size 0): a slow client then holds the
# app back on its thread as it does inline, which this file asserts. With
# spilling on, the thread goes on instead: t/019-spill.t.
use FindBin;
$ENV{TEST_NGINX_WSGI_THREADS} = 4;
$ENV{TEST_NGINX_WSGI_MAX_TEMP_FILE_SIZE} = 0;
exec $^X, "-I$FindBin::Bin/../lib", '-MThreadMode', "$FindBin::Bin/../012-slow-clients.t" or die "exec: $!";
