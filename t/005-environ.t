# The environ, complete: CGI keys, HTTP_* headers, wsgi.* keys, TLS, and
# wsgi_param (with mounting an app under a prefix).
use Test::Nginx::Socket 'no_plan';
use File::Basename qw(dirname);
use FindBin;
use lib "$FindBin::Bin/lib";
use WsgiTest;

no_shuffle();

# nginx's stock uwsgi_params and fastcgi_params (installed beside the nginx
# under test, or in TEST_NGINX_CONF_DIR: /etc/nginx for Debian's), their lines turned into wsgi_params that set <SET>_<KEY>, for
# pep3333:params_parity to compare with the module's own keys. Left out:
# fastcgi's SCRIPT_NAME (a PHP script's path; a WSGI app's SCRIPT_NAME is
# its mount point), REDIRECT_STATUS (for PHP only), and HTTP_HOST, which
# nginx's own files leave to the request's headers and Debian's set to
# $host (a security update: the port and an absolute URI's mismatched Host
# are dropped); the module passes the Host header, as for every HTTP_*.
my %parity_keys;
sub parity_params {
    my $conf = $ENV{TEST_NGINX_CONF_DIR} // dirname(dirname($ENV{TEST_NGINX_BINARY})) . "/conf";
    my (@lines, @sets);
    for my $set (qw(uwsgi fastcgi)) {
        open my $f, '<', "$conf/${set}_params" or die "$conf/${set}_params: $!";
        my @keys;
        while (<$f>) {
            next unless /^\s*${set}_param\s+(\S+)\s+(.*?);\s*$/;
            my ($key, $value) = ($1, $2);
            next if $key eq 'SCRIPT_NAME' || $key eq 'REDIRECT_STATUS' || $key eq 'HTTP_HOST';
            push @keys, $key;
            push @lines, "wsgi_param \U${set}\E_$key $value;";
        }
        push @sets, uc $set;
        push @lines, "wsgi_param PARITY_\U$set\E \"@keys\";";
        $parity_keys{$set} = @keys;
    }
    push @lines, "wsgi_param PARITY_SETS \"@sets\";";
    return join "\n", @lines;
}

# What params_parity answers when every key agrees (the files' key counts
# differ between nginx versions and distributions: Debian's add HTTP_HOST).
sub parity_agrees {
    parity_params() unless %parity_keys;
    return join '', map { "${_}_params: $parity_keys{$_} keys, 0 differ\n" } qw(uwsgi fastcgi);
}

run_tests();

__DATA__

=== TEST 1: every key PEP 3333 requires, and the CGI keys nginx's uwsgi_params and fastcgi_params give, with the right values
--- config
location /env { wsgi_pass pep3333:environ_json; }
--- request
GET /env/x?a=1&b=%20
--- response_body_like eval
qr/^\{"DOCUMENT_ROOT": "\/[^"]*\/html", "DOCUMENT_URI": "\/env\/x", "GATEWAY_INTERFACE": "CGI\/1.1", "HTTP_CONNECTION": "close", "HTTP_HOST": "localhost", "PATH_INFO": "\/env\/x", "QUERY_STRING": "a=1&b=%20", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "\d+", "REQUEST_METHOD": "GET", "REQUEST_SCHEME": "http", "REQUEST_URI": "\/env\/x\?a=1&b=%20", "SCRIPT_NAME": "", "SERVER_ADDR": "127.0.0.1", "SERVER_NAME": "localhost", "SERVER_PORT": "$ENV{TEST_NGINX_SERVER_PORT}", "SERVER_PROTOCOL": "HTTP\/1.1", "SERVER_SOFTWARE": "nginx\/\d+\.\d+\.\d+", "wsgi.asynchronous": true, "wsgi.errors": "ErrorLog", "wsgi.file_wrapper": "type", "wsgi.input": "EmptyInput", "wsgi.input_terminated": true, "wsgi.multiprocess": false, "wsgi.multithread": ${\($ENV{TEST_NGINX_WSGI_THREADS} ? "true" : "false")}, "wsgi.run_once": false, "wsgi.url_scheme": "http", "wsgi.version": \[1, 0\], "x-wsgiorg.flush": "Flush"\}\n\z/



=== TEST 2: PATH_INFO is the percent-decoded path, its bytes as latin-1
--- config
location /p { wsgi_pass pep3333:path_bytes; }
--- request
GET /p/caf%C3%A9%20bar
--- response_body
/p/café bar



=== TEST 3: CONTENT_TYPE and CONTENT_LENGTH only when the request has them, never HTTP_CONTENT_*
--- config
location /env { wsgi_pass pep3333:environ_json; }
--- request
POST /env
hello
--- more_headers
Content-Type: text/x-greeting
--- response_body_like eval
qr/"CONTENT_LENGTH": "5", "CONTENT_TYPE": "text\/x-greeting"/
--- response_body_unlike: HTTP_CONTENT



=== TEST 4: REMOTE_PORT and repeated headers
--- config
location /env { wsgi_pass pep3333:environ_json; }
--- request
GET /env
--- more_headers
X-Multi: one
X-Multi: two
--- response_body_like eval
qr/"HTTP_X_MULTI": "one, two".*"REMOTE_PORT": "\d+"/



=== TEST 5: a header with "_" is dropped unless underscores_in_headers is on (it could pose as X-User)
--- config
ignore_invalid_headers off;
location /env { wsgi_pass pep3333:environ_json; }
--- request
GET /env
--- more_headers
X_User: spoofed
--- response_body_unlike: HTTP_X_USER



=== TEST 6: with underscores_in_headers on, "X_User" becomes HTTP_X_USER
--- config
underscores_in_headers on;
location /env { wsgi_pass pep3333:environ_json; }
--- request
GET /env
--- more_headers
X_User: allowed
--- response_body_like: "HTTP_X_USER": "allowed"



=== TEST 7: HTTPS=on, REQUEST_SCHEME and wsgi.url_scheme https under TLS
--- http_config
wsgi_python_path $TEST_NGINX_APPS;
server {
    listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1 ssl;
    server_name tls.example;
    ssl_certificate $TEST_NGINX_CERTS/test.crt;
    ssl_certificate_key $TEST_NGINX_CERTS/test.key;
    location /env { wsgi_pass pep3333:environ_json; }
}
--- config
location /tls {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1/env;
}
--- request
GET /tls
--- response_body_like eval
qr/"HTTPS": "on".*"REQUEST_SCHEME": "https".*"SERVER_NAME": "tls.example", "SERVER_PORT": "\d+".*"wsgi.url_scheme": "https"/



=== TEST 8: wsgi_param sets and overrides keys, with nginx variables
--- config
location /env {
    wsgi_param APP_ENV production;
    wsgi_param REMOTE_ADDR 10.0.0.1;
    wsgi_param X_FROM_VARS "$request_method $arg_q";
    wsgi_param wsgi.url_scheme https;
    wsgi_pass pep3333:environ_json;
}
--- request
GET /env?q=42
--- response_body_like eval
qr/"APP_ENV": "production".*"REMOTE_ADDR": "10\.0\.0\.1".*"X_FROM_VARS": "GET 42".*"wsgi.url_scheme": "https"/



=== TEST 9: wsgi_param ... if_not_empty skips an empty value
--- config
location /env {
    wsgi_param X_SET "$arg_x" if_not_empty;
    wsgi_param X_EMPTY "$arg_missing" if_not_empty;
    wsgi_param X_ALWAYS "$arg_missing";
    wsgi_pass pep3333:environ_json;
}
--- request
GET /env?x=1
--- response_body_like eval
qr/"X_ALWAYS": "", "X_SET": "1"/
--- response_body_unlike: X_EMPTY



=== TEST 10: wsgi_param is inherited from server level unless the location sets its own
--- config
wsgi_param FROM_SERVER yes;
location /inherits { wsgi_pass pep3333:environ_json; }
location /own {
    wsgi_param FROM_LOCATION yes;
    wsgi_pass pep3333:environ_json;
}
--- request eval
["GET /inherits", "GET /own"]
--- response_body_like eval
[qr/"FROM_SERVER": "yes"/, qr/"FROM_LOCATION": "yes"/]
--- response_body_unlike eval
[qr/FROM_LOCATION/, qr/FROM_SERVER/]



=== TEST 11: an app mounted under /app/: SCRIPT_NAME is the prefix, PATH_INFO the rest, URLs rebuild right
--- config
location /app/ {
    wsgi_param SCRIPT_NAME /app;
    wsgi_pass pep3333:urls;
}
--- request
GET /app/users/7?tab=posts
--- response_body eval
"SCRIPT_NAME=/app
PATH_INFO=/users/7
application_uri=http://localhost/app
request_uri=http://localhost/app/users/7?tab=posts
"



=== TEST 12: the mount point itself, and a trailing "/" in SCRIPT_NAME
--- config
location /app {
    wsgi_param SCRIPT_NAME /app/;
    wsgi_pass pep3333:urls;
}
--- request
GET /app
--- response_body eval
"SCRIPT_NAME=/app
PATH_INFO=
application_uri=http://localhost/app
request_uri=http://localhost/app
"



=== TEST 13: a malformed wsgi_param flag is rejected
--- config
location / { wsgi_param A b if_empty; wsgi_pass pep3333:urls; }
--- must_die
--- error_log
invalid parameter "if_empty" in "wsgi_param" directive, it must be "if_not_empty"



=== TEST 14: the same keys, with the same values, as nginx's own uwsgi_params and fastcgi_params give
--- config eval
"location /env {
    root $ENV{TEST_NGINX_APPS};
    ${\ main::parity_params()}
    wsgi_pass pep3333:params_parity;
}"
--- request
POST /env/x?a=1
{"k": 1}
--- more_headers
Content-Type: application/json
--- response_body eval
main::parity_agrees()



=== TEST 15: ... and under TLS, with HTTPS set
--- http_config eval
"wsgi_python_path $ENV{TEST_NGINX_APPS};
server {
    listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_1 ssl;
    server_name tls.example;
    ssl_certificate \$TEST_NGINX_CERTS/test.crt;
    ssl_certificate_key \$TEST_NGINX_CERTS/test.key;
    location /env {
        ${\ main::parity_params()}
        wsgi_pass pep3333:params_parity;
    }
}"
--- config
location /tls {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1/env;
}
--- request
GET /tls?b=2
--- response_body eval
main::parity_agrees()



=== TEST 16: REMOTE_USER and AUTH_TYPE when auth_basic checked the user; not without it, nor under "auth_basic off"
--- config
location /env {
    auth_basic "test";
    auth_basic_user_file ../html/htpasswd;
    wsgi_pass pep3333:environ_json;
    location /env/open {
        auth_basic off;
        wsgi_pass pep3333:environ_json;
    }
}
location /plain { wsgi_pass pep3333:environ_json; }
--- user_files
>>> htpasswd
alice:{PLAIN}secret
--- request eval
["GET /env", "GET /env/open", "GET /plain"]
--- more_headers
Authorization: Basic YWxpY2U6c2VjcmV0
--- response_body_like eval
[qr/"AUTH_TYPE": "Basic".*"REMOTE_USER": "alice"/, qr/"PATH_INFO": "\/env\/open"/, qr/"PATH_INFO": "\/plain"/]
--- response_body_unlike eval
[qr/^(?!)/, qr/REMOTE_USER|AUTH_TYPE/, qr/REMOTE_USER|AUTH_TYPE/]



=== TEST 17: REMOTE_USER when an auth_request subrequest approved the request
--- config
location /env {
    auth_request /auth;
    wsgi_pass pep3333:environ_json;
}
location = /auth {
    internal;
    return 204;
}
--- request
GET /env
--- more_headers
Authorization: Basic YWxpY2U6c2VjcmV0
--- response_body_like: "AUTH_TYPE": "Basic".*"REMOTE_USER": "alice"



=== TEST 18: under "satisfy any" a request may get in on its address alone: no REMOTE_USER, unless wsgi_param asks for $remote_user
--- config
location /env {
    satisfy any;
    allow 127.0.0.1;
    deny all;
    auth_basic "test";
    auth_basic_user_file ../html/htpasswd;
    wsgi_pass pep3333:environ_json;
    location /env/asked {
        wsgi_param REMOTE_USER $remote_user;
        wsgi_pass pep3333:environ_json;
    }
}
--- user_files
>>> htpasswd
alice:{PLAIN}secret
--- request eval
["GET /env", "GET /env/asked"]
--- more_headers
Authorization: Basic bWFsbG9yeTpndWVzcw==
--- response_body_like eval
[qr/"PATH_INFO": "\/env"/, qr/"REMOTE_USER": "mallory"/]
--- response_body_unlike eval
[qr/REMOTE_USER|AUTH_TYPE/, qr/AUTH_TYPE/]



=== TEST 19: wsgi_param overrides the keys the module sets
--- config
location /env {
    wsgi_param SERVER_SOFTWARE "MyServer/1.0";
    wsgi_param GATEWAY_INTERFACE "CGI/1.2";
    wsgi_param DOCUMENT_ROOT /srv/www;
    wsgi_param SERVER_ADDR 192.0.2.1;
    wsgi_pass pep3333:environ_json;
}
--- request
GET /env
--- response_body_like eval
qr/"DOCUMENT_ROOT": "\/srv\/www".*"GATEWAY_INTERFACE": "CGI\/1.2".*"SERVER_ADDR": "192.0.2.1".*"SERVER_SOFTWARE": "MyServer\/1.0"/



=== TEST 20: DOCUMENT_ROOT follows a root with variables, request by request
--- config
location /env {
    root /srv/$arg_site;
    wsgi_pass pep3333:environ_json;
}
--- request eval
["GET /env?site=one", "GET /env?site=two", "GET /env?site=one"]
--- response_body_like eval
[qr/"DOCUMENT_ROOT": "\/srv\/one"/, qr/"DOCUMENT_ROOT": "\/srv\/two"/, qr/"DOCUMENT_ROOT": "\/srv\/one"/]



=== TEST 21: on a unix socket, SERVER_ADDR is what $server_addr says, and each server keeps its SERVER_NAME
--- http_config
wsgi_python_path $TEST_NGINX_APPS;
server {
    listen unix:/tmp/ngx_wsgi_t005.sock;
    server_name on.unix;
    location /env {
        wsgi_param EXPECTED_ADDR $server_addr;
        wsgi_pass pep3333:environ_json;
    }
}
--- config
location /unix { proxy_pass http://unix:/tmp/ngx_wsgi_t005.sock:/env; }
location /env { wsgi_pass pep3333:environ_json; }
--- request eval
["GET /unix", "GET /env", "GET /unix"]
--- response_body_like eval
[qr/"EXPECTED_ADDR": "(unix:[^"]*)".*"SERVER_ADDR": "\1", "SERVER_NAME": "on.unix", "SERVER_PORT": "80"/,
 qr/"SERVER_ADDR": "127.0.0.1", "SERVER_NAME": "localhost"/,
 qr/"SERVER_NAME": "on.unix"/]
