package NginxCompat;

# What differs between the nginx versions the suite runs against: the
# vendored 1.28 (make test) and Debian 12's 1.22 (make test-distro).
#
# Test hooks: the fault points of the test build (`wsgi_test_hook`,
# src/test_hooks.rs) are not in a release build such as the Debian
# package's. A block that needs one to happen skips (test_hooks); one that
# uses it only to force a rare order runs without (hook_line).
#
# HTTP/2: `http2 on;` came in nginx 1.25.1; before, `http2` is a parameter
# of `listen`. Test::Nginx writes `http2 on;` for any nginx from 1.19.9,
# which 1.22 refuses: WsgiTest.pm mends its configuration with
# http2_listen. NginxRunner serves HTTP/2 on a port of its own there.

use strict;
use warnings;
use Exporter 'import';

our @EXPORT_OK = qw(nginx_version http2_listen http2_directive test_hooks hook_line has_poll);

my $version;

# nginx's version as a number: 1.22.1 is 1022001.
sub nginx_version {
    return $version if defined $version;
    my $bin = $ENV{TEST_NGINX_BINARY} // 'nginx';
    my $out = `'$bin' -v 2>&1`;
    my ($major, $minor, $patch) = $out =~ m{nginx/(\d+)\.(\d+)\.(\d+)} or die "nginx -v: $out";
    return $version = $major * 1_000_000 + $minor * 1000 + $patch;
}

# Whether the module under test has the test build's hooks: its
# directive's name is in the file.
my $hooks;
sub test_hooks {
    return $hooks if defined $hooks;
    my $so = $ENV{TEST_NGINX_LOAD_MODULES} // '';
    open my $f, '<:raw', $so or return $hooks = 0;
    my $bytes = do { local $/; <$f> };
    return $hooks = index($bytes, 'wsgi_test_hook') >= 0 ? 1 : 0;
}

# `wsgi_test_hook NAME;` where the module has hooks, else nothing.
sub hook_line {
    my ($name) = @_;
    return test_hooks() ? "wsgi_test_hook $name;" : '';
}

# Whether nginx has the poll event method, which a build has only when
# configured --with-poll_module on a system with epoll (the test build is;
# Debian's nginx is not).
sub has_poll {
    my $bin = $ENV{TEST_NGINX_BINARY} // 'nginx';
    return `'$bin' -V 2>&1` =~ /--with-poll_module/ ? 1 : 0;
}

# Test::Nginx's configuration text, with the `http2 on;` it writes right
# after a listen line turned into that line's parameter where nginx
# predates the directive.
sub http2_listen {
    my ($conf) = @_;
    return $conf if nginx_version() >= 1_025_001;
    $conf =~ s/(\blisten\s+[^;]*?)\s*;\s*http2\s+on\s*;/$1 http2;/g;
    return $conf;
}

# Whether `http2 on;` exists: before, a plaintext listen with http2 serves
# HTTP/2 only (with prior knowledge), not HTTP/1.x beside it.
sub http2_directive { nginx_version() >= 1_025_001 }

1;
