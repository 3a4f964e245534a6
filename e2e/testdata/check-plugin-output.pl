#!/usr/bin/perl
# Checks a Nagios plugin's output against the monitoring-plugins conventions, with the perfdata
# parser of Monitoring::Plugin (Debian: libmonitoring-plugin-perl).
#   check-plugin-output.pl EXIT_STATUS < OUTPUT
# Prints "ok" and exits 0, or prints the problems and exits 1.
use strict;
use warnings;
use Monitoring::Plugin::Performance;

my $status = shift @ARGV;
my $output = do { local $/; <STDIN> };
my @problems;
my %word = (0 => 'OK', 1 => 'WARNING', 2 => 'CRITICAL', 3 => 'UNKNOWN');

push @problems, "exit status $status is not 0..3" unless defined $status && $status =~ /^[0-3]$/;
push @problems, "output is " . length($output) . " bytes, Nagios 4 keeps 8192" if length($output) > 8192;
my ($first) = split /\n/, $output, 2;
$first = '' unless defined $first;
push @problems, "first line is empty" if $first eq '';
my ($text, $perf) = split /\|/, $first, 2;
if (defined $status && exists $word{$status}) {
    my $w = $word{$status};
    push @problems, "status word is not $w: '$text'" unless $text =~ /^(?:[A-Z]+ )?$w\b/;
}
if (defined $perf && $perf =~ /\S/) {
    my @tokens = split ' ', $perf;
    my @parsed = Monitoring::Plugin::Performance->parse_perfstring($perf);
    push @problems, scalar(@tokens) . " perfdata items, " . scalar(@parsed) . " parse: '$perf'"
        if @parsed != @tokens;
}
if (@problems) { print "$_\n" for @problems; exit 1 }
print "ok\n";
