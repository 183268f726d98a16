package WsgiTest;

# Block defaults shared by the Test::Nginx files, which load it after
# Test::Nginx::Socket:
#
#     use FindBin;
#     use lib "$FindBin::Bin/lib";
#     use WsgiTest;
#
# A block without an http_config section gets the test apps' directory on
# the Python path; a block with one, even empty, keeps it as written.
# A preprocessor, not an http-config filter: Test::Nginx keeps one filter,
# and ThreadMode.pm has it.

use strict;
use warnings;
use Exporter 'import';
use Test::Nginx::Socket ();

our @EXPORT = qw(block_defaults);

# On an nginx older than the `http2 on;` directive (Debian 12's 1.22), the
# configuration Test::Nginx wrote for a `--- http2` block is mended once
# written (NginxCompat.pm says why).
use NginxCompat qw(http2_listen http2_directive);
if (!http2_directive()) {
    no warnings 'redefine';
    my $write = \&Test::Nginx::Util::write_config_file;
    *Test::Nginx::Util::write_config_file = sub ($$$) {
        $write->(@_);
        my $file = $Test::Nginx::Util::ConfFile;
        open my $in, '<', $file or die "$file: $!";
        my $conf = do { local $/; <$in> };
        close $in;
        open my $out, '>', $file or die "$file: $!";
        print $out http2_listen($conf);
        close $out;
    };
}

my @defaults;

# block_defaults(SECTION => VALUE, ..., unless => [SECTION, ...]): a block
# with none of the `unless` sections gets each SECTION it lacks. Applied in
# the order given, before the apps directory, so a file's own http_config
# wins.
sub block_defaults {
    my %sections = @_;
    my $unless = delete $sections{unless} // [];
    push @defaults, [\%sections, $unless];
}

# Test::Nginx runs the last-added preprocessor first, and -MThreadMode loads
# before the test file: ThreadMode's error-log wait sees these defaults.
# $TEST_NGINX_APPS is expanded by Test::Nginx, which bails out if it is unset.
Test::Nginx::Socket::add_block_preprocessor(sub {
    my ($block) = @_;
    for my $default (@defaults, [{ http_config => 'wsgi_python_path $TEST_NGINX_APPS;' }, []]) {
        my ($sections, $unless) = @$default;
        next if grep { defined $block->$_ } @$unless;
        for my $name (sort keys %$sections) {
            $block->set_value($name, $sections->{$name}) if !defined $block->$name;
        }
    }
});

1;
