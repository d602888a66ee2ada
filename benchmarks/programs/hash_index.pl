# An inverted index of generated text: SIZE lines of words drawn from a fixed
# generator, a hash from each word to the list of its line numbers, sorted
# queries over it, and the whole index rebuilt as strings once. Prints counts
# and checksums only.
use strict;
use warnings;

my $lines = shift // 100000;
my $seed = 42;
sub next_rand { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed >> 16; }
my @syllables = qw(ka lo mi ne ru sa ti vo xe zu an el im on ur);

my %index;
my @text;
for my $n (1 .. $lines) {
  my @words;
  my $count = 4 + next_rand() % 12;
  for (1 .. $count) {
    my $len = 1 + next_rand() % 4;
    push @words, join("", map { $syllables[next_rand() % @syllables] } 1 .. $len);
  }
  my $line = join(" ", @words);
  push @text, $line;
  push @{ $index{$_} }, $n for @words;
}

my $postings = 0;
$postings += @{ $index{$_} } for keys %index;
my @by_count = sort { @{ $index{$b} } <=> @{ $index{$a} } || $a cmp $b } keys %index;
my $check = 0;
for my $i (0 .. 99) {
  last if $i >= @by_count;
  my $word = $by_count[$i];
  $check = ($check * 31 + scalar(@{ $index{$word} }) + length($word)) % 1000000007;
}
my %serial;
$serial{$_} = join(",", @{ $index{$_} }) for keys %index;
my $bytes = 0;
$bytes += length($serial{$_}) for keys %serial;
my %lengths;
$lengths{ length($_) }++ for @text;
my $buckets = join(";", map { "$_=$lengths{$_}" } sort { $a <=> $b } keys %lengths);
printf "lines %d words %d postings %d check %d serial %d\n", $lines, scalar(keys %index),
  $postings, $check, $bytes;
print "lengths $buckets\n";
